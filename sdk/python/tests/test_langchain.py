"""agentdb.langchain: the LangChain VectorStore against the real server, with AgentDB's
own text encoder (no embedding model here) and with client embeddings."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import VectorStoreRetriever

import agentdb
from agentdb.langchain import AgentDBVectorStore

TEXTS = [
    "Knead the dough, let it rise and bake the bread in a hot oven.",
    "The red sports car raced down the motorway at high speed.",
    "Sourdough bread needs a starter of flour and water.",
    "Tomatoes grow best in full sun with regular watering.",
]
METAS = [
    {"topic": "cooking", "year": 2021, "source": "a.md"},
    {"topic": "cars", "year": 2019, "source": "a.md"},
    {"topic": "cooking", "year": 2015, "source": "a.md"},
    {"topic": "garden \"quoted\"", "year": 2020, "source": "b.md"},
]
IDS = ["bread", "car", "sourdough", "tomato"]


@pytest.fixture
def store(admin, unique):
    return AgentDBVectorStore(unique("lc"), admin)


def test_server_encoder_add_search_filter_delete(store, admin):
    assert store.add_texts(TEXTS, METAS, ids=IDS) == IDS
    # The payload holds the page text and the metadata.
    item = admin.get(store.collection, ["bread"])[0]
    assert item.payload["text"] == TEXTS[0] and item.payload["metadata"] == METAS[0]

    hits = store.similarity_search_with_score("how do I bake a loaf of bread", k=4)
    assert [d.id for d, _ in hits][:2] == ["bread", "sourdough"]
    # Scores: cosine similarity, best first, the related ones well above the unrelated.
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert scores[0] > 0.5 and scores[-1] < 0.2
    assert hits[0][0].page_content == TEXTS[0] and hits[0][0].metadata == METAS[0]
    # Several chunks of one source are separate results (the server fuses by payload
    # `source`; the metadata lives under `metadata`, so it does not).
    assert {d.id for d, _ in hits} == set(IDS)

    # A dict filter: equality and operators; the bread recipe from 2021 is filtered out.
    docs = store.similarity_search("how do I bake a loaf of bread", k=4, filter={"topic": "cooking", "year": {"$lt": 2020}})
    assert [d.id for d in docs] == ["sourdough"]
    docs = store.similarity_search("bread", k=4, filter={"year": [2019, 2020]})
    assert {d.id for d in docs} == {"car", "tomato"}
    # A string value with quotes is quoted properly.
    assert [d.id for d in store.similarity_search("plants", k=4, filter={"topic": 'garden "quoted"'})] == ["tomato"]
    # A raw AgentDB filter expression.
    docs = store.similarity_search("bread", k=4, filter='metadata.year >= 2020 and metadata.topic != "cars"')
    assert {d.id for d in docs} == {"bread", "tomato"}

    # Relevance scores in [0, 1]; a threshold cuts the unrelated ones.
    rel = store.similarity_search_with_relevance_scores("baking bread", k=4, score_threshold=0.6)
    assert {d.id for d, _ in rel} == {"bread", "sourdough"} and all(0.6 <= s <= 1 for _, s in rel)

    retriever = store.as_retriever(search_kwargs={"k": 1})
    assert isinstance(retriever, VectorStoreRetriever)
    assert [d.id for d in retriever.invoke("a fast automobile")] == ["car"]
    filtered = store.as_retriever(search_kwargs={"k": 2, "filter": {"topic": "cooking"}})
    assert {d.id for d in filtered.invoke("a fast automobile")} == {"bread", "sourdough"}

    got = store.get_by_ids(["car", "missing", "tomato"])
    assert sorted(d.id for d in got) == ["car", "tomato"]
    assert store.delete(["car"]) is True
    assert store.get_by_ids(["car"]) == []
    assert "car" not in [d.id for d in store.similarity_search("a fast automobile", k=4)]
    assert store.delete(filter={"topic": "cooking"}) is True
    assert [d.id for d in store.similarity_search("bread", k=4)] == ["tomato"]
    # Documents were embedded by Embed, no scratch collection: the stored vector is the
    # server encoder's embedding of the text, and the text search finds it by it.
    assert not [c.name for c in admin.list_collections() if c.name.startswith(store.collection + "__")]
    [tomato] = admin.get(store.collection, ["tomato"], with_vectors=True)
    emb = store.embed_texts([TEXTS[3]])
    assert emb.encoder == admin.get_collection(store.collection).space("text").encoder
    np.testing.assert_allclose(tomato.vectors["text"], emb[0], atol=1e-5)
    assert store.similarity_search_by_vector(emb[0].tolist(), k=1)[0].id == "tomato"


def test_add_documents_mmr_and_long_text(store):
    docs = [Document(page_content=t, metadata=m, id=i) for t, m, i in zip(TEXTS, METAS, IDS)]
    assert store.add_documents(docs) == IDS
    # An upsert of the same id replaces it.
    store.add_documents([Document(page_content="Bake a cake with eggs and sugar.", metadata={"topic": "cooking"}, id="bread")])
    assert store.get_by_ids(["bread"])[0].page_content.startswith("Bake a cake")
    # Texts without ids get UUIDs; a long text (several server chunks) still embeds.
    [gen] = store.add_texts([" ".join(["The violin and the cello play a quiet duet."] * 60)])
    assert len(gen) == 36
    assert store.similarity_search("string instruments music", k=1)[0].id == gen
    mmr = store.max_marginal_relevance_search("bread and baking", k=2, fetch_k=4, lambda_mult=0.5)
    assert len(mmr) == 2 and mmr[0].id in ("sourdough", "bread")
    with pytest.raises(ValueError):
        store.add_texts(["   "])
    with pytest.raises(ValueError):
        store.delete()


def test_client_embeddings_and_from_texts(admin, unique):
    emb = DeterministicFakeEmbedding(size=32)
    name = unique("lcemb")
    store = AgentDBVectorStore.from_texts(TEXTS, emb, METAS, ids=IDS, collection=name, client=admin)
    info = admin.get_collection(name)
    assert info.space().dim == 32 and not info.space().encoder
    # The fake embedding is a hash of the text: the exact text is its own nearest neighbour.
    hits = store.similarity_search_with_score(TEXTS[3], k=2)
    assert hits[0][0].id == "tomato" and hits[0][1] == pytest.approx(1.0, abs=1e-5) and hits[1][1] < 0.9
    assert [d.id for d in store.similarity_search(TEXTS[3], k=2, filter={"topic": "cars"})] == ["car"]
    by_vec = store.similarity_search_by_vector(emb.embed_query(TEXTS[1]), k=1)
    assert by_vec[0].id == "car"
    assert store.as_retriever(search_kwargs={"k": 1}).invoke(TEXTS[2])[0].id == "sourdough"
    store.delete(["sourdough"])
    assert "sourdough" not in [d.id for d in store.similarity_search(TEXTS[2], k=4)]


def test_async_methods(server, admin, unique):
    name = unique("lcasync")

    async def body():
        async with agentdb.AsyncClient(server.url, api_key=server.admin_key) as ac:
            store = AgentDBVectorStore(name, admin, async_client=ac)
            assert await store.aadd_texts(TEXTS, METAS, ids=IDS) == IDS
            hits = await store.asimilarity_search_with_score("baking bread at home", k=2, filter={"year": {"$gte": 2020}})
            assert [d.id for d, _ in hits] == ["bread", "tomato"] and hits[0][1] > hits[1][1]
            assert (await store.aget_by_ids(["car"]))[0].metadata["topic"] == "cars"
            assert await store.adelete(["car"]) is True
            assert await store.aget_by_ids(["car"]) == []
            docs = await store.as_retriever(search_kwargs={"k": 1}).ainvoke("sourdough starter")
            assert docs[0].id == "sourdough"

    asyncio.run(body())


def test_filter_translation(store):
    f = store.filter_expression
    assert f({"a": "x", "n": 3}) == '`metadata`.`a` = "x" and `metadata`.`n` = 3'
    assert f({"a b": {"$ne": True, "$exists": True}}) == '`metadata`.`a b` != true and exists(`metadata`.`a b`)'
    assert f({"$or": [{"a": 1}, {"b": {"$nin": ["x", "y"]}}]}) == (
        '((`metadata`.`a` = 1) or (`metadata`.`b` not in ["x", "y"]))'
    )
    assert f("raw = 1") == "raw = 1" and f(None) == ""
    with pytest.raises(ValueError):
        f({"year": {"$gt": "2020"}})
    with pytest.raises(ValueError):
        f({"a": {"$like": "x"}})
