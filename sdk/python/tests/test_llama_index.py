"""agentdb.llama_index: the LlamaIndex vector store against the real server, with
AgentDB's own text encoder and with client embeddings."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

import agentdb
from agentdb.llama_index import AgentDBEmbedding, AgentDBVectorStore, metadata_filters_expression

DOCS = [
    ("bread", "Knead the dough, let it rise and bake the bread in a hot oven.", {"topic": "cooking", "year": 2021}),
    ("car", "The red sports car raced down the motorway at high speed.", {"topic": "cars", "year": 2019}),
    ("sourdough", "Sourdough bread needs a starter of flour and water.", {"topic": "cooking", "year": 2015}),
    ("tomato", "Tomatoes grow best in full sun with regular watering.", {"topic": "garden", "year": 2020}),
]


def _filters(*fs, condition=FilterCondition.AND):
    return MetadataFilters(filters=list(fs), condition=condition)


def test_server_encoder_index_retrieve_filter_delete(admin, unique):
    store = AgentDBVectorStore(unique("li"), admin, server_encoder=True)
    assert store.stores_text and not store.is_embedding_query
    docs = [Document(text=t, metadata=m, doc_id=d) for d, t, m in DOCS]
    index = VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=store.embed_model
    )
    # Retrieval through the index: the query goes to the server as text.
    got = index.as_retriever(similarity_top_k=2).retrieve("how do I bake a loaf of bread")
    assert [n.node.ref_doc_id for n in got] == ["bread", "sourdough"]
    assert got[0].score > got[1].score > 0.3 and got[0].node.metadata == DOCS[0][2]
    assert got[0].node.get_content() == DOCS[0][1]
    answer = index.as_query_engine(llm=MockLLM(), similarity_top_k=1).query("a fast automobile")
    assert [n.node.ref_doc_id for n in answer.source_nodes] == ["car"]

    # query() directly: nodes, similarities, ids; filters are applied by the server.
    res = store.query(VectorStoreQuery(query_str="baking bread", similarity_top_k=4))
    assert len(res.ids) == 4 and res.similarities == sorted(res.similarities, reverse=True)
    assert [n.node_id for n in res.nodes] == res.ids and res.nodes[0].ref_doc_id in ("bread", "sourdough")
    flt = _filters(
        MetadataFilter(key="topic", value="cooking"), MetadataFilter(key="year", value=2020, operator=FilterOperator.LT)
    )
    res = store.query(VectorStoreQuery(query_str="baking bread", similarity_top_k=4, filters=flt))
    assert [n.ref_doc_id for n in res.nodes] == ["sourdough"]
    either = _filters(
        MetadataFilter(key="topic", value=["cars", "garden"], operator=FilterOperator.IN),
        MetadataFilter(key="year", value=2021, operator=FilterOperator.GTE),
        condition=FilterCondition.OR,
    )
    res = store.query(VectorStoreQuery(query_str="baking bread", similarity_top_k=4, filters=either))
    assert {n.ref_doc_id for n in res.nodes} == {"bread", "car", "tomato"}
    res = store.query(VectorStoreQuery(query_str="bread", similarity_top_k=4, doc_ids=["car", "tomato"]))
    assert {n.ref_doc_id for n in res.nodes} == {"car", "tomato"}
    # A retriever with filters.
    r = index.as_retriever(similarity_top_k=3, filters=_filters(MetadataFilter(key="topic", value="cooking", operator=FilterOperator.NE)))
    assert {n.node.ref_doc_id for n in r.retrieve("bread")} == {"car", "tomato"}

    # The index built on the existing store, with a mock embed model (unused for queries).
    again = VectorStoreIndex.from_vector_store(store, embed_model=MockEmbedding(embed_dim=8))
    assert [n.node.ref_doc_id for n in again.as_retriever(similarity_top_k=1).retrieve("sourdough starter")] == [
        "sourdough"
    ]

    # delete(ref_doc_id) removes that document's nodes.
    index.delete_ref_doc("car")
    res = store.query(VectorStoreQuery(query_str="a fast automobile", similarity_top_k=4))
    assert "car" not in {n.ref_doc_id for n in res.nodes} and len(res.nodes) == 3
    # Nodes added without embeddings are embedded by the server.
    store.add([TextNode(text="The violin and the cello play a quiet duet.", id_="music", metadata={"topic": "music"})])
    res = store.query(VectorStoreQuery(query_str="string instruments", similarity_top_k=1))
    assert res.ids == ["music"] and res.nodes[0].metadata == {"topic": "music"}
    assert [n.node_id for n in store.get_nodes(["music", "nope"])] == ["music"]
    store.delete_nodes(filters=_filters(MetadataFilter(key="topic", value="music")))
    assert store.get_nodes(["music"]) == []


def test_agentdb_embedding_matches_the_server(server, admin, unique):
    coll = unique("liembed")
    emb = AgentDBEmbedding(admin, collection=coll)  # creates the collection (multimodal)
    q = emb.get_query_embedding("how do I bake bread")
    a, b = emb.get_text_embedding_batch([DOCS[0][1], DOCS[1][1]])
    assert len(q) == 384 and abs(sum(x * x for x in q) - 1.0) < 1e-3
    dot = lambda u, v: sum(x * y for x, y in zip(u, v))  # noqa: E731
    assert dot(q, a) > 0.5 > dot(q, b)
    assert emb.encoder == admin.get_collection(coll).space("text").encoder
    # The same vectors as Client.embed; asyncio through an AsyncClient too.
    np.testing.assert_allclose(a, admin.embed(coll, [DOCS[0][1]]).vectors[0], atol=1e-5)

    async def aembed():
        async with agentdb.AsyncClient(server.url, api_key=server.admin_key) as ac:
            e = AgentDBEmbedding(admin, async_client=ac, collection=coll)
            return await e.aget_text_embedding_batch([DOCS[0][1]])

    np.testing.assert_allclose(asyncio.run(aembed())[0], a, atol=1e-5)
    with pytest.raises(agentdb.NotFound):
        AgentDBEmbedding(admin, collection=unique("missing"), create_collection=False).get_query_embedding("x")
    with pytest.raises(agentdb.InvalidArgument):
        raw = unique("liraw")
        admin.create_collection(raw, 4)
        AgentDBEmbedding(admin, collection=raw).get_query_embedding("a raw-vector collection has no encoder")


def test_client_embeddings(admin, unique):
    store = AgentDBVectorStore(unique("liemb"), admin)
    assert store.is_embedding_query
    nodes = [
        TextNode(text="alpha", id_="n1", metadata={"k": 1, "tags": ["x", "y"]}, embedding=[1.0, 0.0, 0.0, 0.0]),
        TextNode(text="beta", id_="n2", metadata={"k": 2, "tags": ["y"]}, embedding=[0.0, 1.0, 0.0, 0.0]),
        TextNode(text="gamma", id_="n3", metadata={"k": 3, "tags": ["z"]}, embedding=[0.0, 0.0, 1.0, 0.0]),
    ]
    assert store.add(nodes) == ["n1", "n2", "n3"]
    assert admin.get_collection(store.collection).space().dim == 4
    res = store.query(VectorStoreQuery(query_embedding=[0.9, 0.1, 0.0, 0.0], similarity_top_k=2))
    assert res.ids == ["n1", "n2"] and res.similarities[0] > 0.99 and res.nodes[0].get_content() == "alpha"
    gt = _filters(MetadataFilter(key="k", value=2, operator=FilterOperator.GT))
    assert store.query(VectorStoreQuery(query_embedding=[1, 0, 0, 0], similarity_top_k=3, filters=gt)).ids == ["n3"]
    anyf = _filters(MetadataFilter(key="tags", value=["x", "z"], operator=FilterOperator.ANY))
    assert set(store.query(VectorStoreQuery(query_embedding=[1, 0, 0, 0], similarity_top_k=3, filters=anyf)).ids) == {"n1", "n3"}
    allf = _filters(MetadataFilter(key="tags", value=["x", "y"], operator=FilterOperator.ALL))
    assert store.query(VectorStoreQuery(query_embedding=[0, 1, 0, 0], similarity_top_k=3, filters=allf)).ids == ["n1"]
    nin = _filters(MetadataFilter(key="k", value=[1, 2], operator=FilterOperator.NIN))
    assert store.query(VectorStoreQuery(query_embedding=[1, 0, 0, 0], similarity_top_k=3, filters=nin)).ids == ["n3"]
    assert store.query(VectorStoreQuery(query_embedding=[1, 0, 0, 0], similarity_top_k=3, node_ids=["n2"])).ids == ["n2"]
    # Nodes without embeddings are refused in this mode.
    with pytest.raises(ValueError):
        store.add([TextNode(text="no vector", id_="n4")])
    # A MockEmbedding index over the store: retrieval embeds the query on this side.
    index = VectorStoreIndex.from_vector_store(store, embed_model=MockEmbedding(embed_dim=4))
    assert len(index.as_retriever(similarity_top_k=2).retrieve("anything")) == 2
    store.delete_nodes(["n1"])
    assert [n.node_id for n in store.get_nodes(["n1", "n2"])] == ["n2"]
    assert [n.node_id for n in store.get_nodes(["n2", "n3"], filters=_filters(MetadataFilter(key="k", value=3)))] == ["n3"]
    # By filters alone (the server pages through the matches), and every node.
    assert [n.node_id for n in store.get_nodes(filters=_filters(MetadataFilter(key="k", value=3)))] == ["n3"]
    assert sorted(n.node_id for n in store.get_nodes()) == ["n2", "n3"]


def test_async(server, admin, unique):
    name = unique("liasync")

    async def body():
        async with agentdb.AsyncClient(server.url, api_key=server.admin_key) as ac:
            store = AgentDBVectorStore(name, admin, server_encoder=True, async_client=ac)
            nodes = [
                TextNode(text=t, id_=d + "-0", metadata=m, relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=d)})
                for d, t, m in DOCS
            ]
            assert await store.async_add(nodes) == [d + "-0" for d, _, _ in DOCS]
            res = await store.aquery(VectorStoreQuery(query_str="a fast automobile", similarity_top_k=1))
            assert res.ids == ["car-0"] and res.nodes[0].ref_doc_id == "car"
            await store.adelete("car")
            res = await store.aquery(VectorStoreQuery(query_str="a fast automobile", similarity_top_k=4))
            assert len(res.ids) == 3 and "car-0" not in res.ids

    asyncio.run(body())


def test_filter_translation():
    f = _filters(
        MetadataFilter(key="a", value='say "hi"'),
        _filters(
            MetadataFilter(key="n", value=1.5, operator=FilterOperator.LTE),
            MetadataFilter(key="e", value=None, operator=FilterOperator.IS_EMPTY),
            condition=FilterCondition.OR,
        ),
    )
    assert metadata_filters_expression(f) == (
        '(`metadata`.`a` = "say \\"hi\\"") and (((`metadata`.`n` <= 1.5) or (not exists(`metadata`.`e`))))'
    )
    with pytest.raises(ValueError):
        metadata_filters_expression(_filters(MetadataFilter(key="a", value="x", operator=FilterOperator.TEXT_MATCH)))
    with pytest.raises(ValueError):
        metadata_filters_expression(_filters(MetadataFilter(key="a", value="x", operator=FilterOperator.GT)))
