"""Client.embed: texts embedded by the encoder of a collection's space (the vectors the
server stores for ingested text and searches with), through the sync and asyncio client."""

from __future__ import annotations

import numpy as np
import pytest

import agentdb

TEXTS = [
    "Knead the dough, let it rise and bake the bread in a hot oven.",
    "The red sports car raced down the motorway at high speed.",
    "Tomatoes grow best in full sun with regular watering.",
]


def test_embed_matches_what_the_server_stores_and_searches(client, unique):
    name = unique("embed")
    info = client.create_collection(name, multimodal=True)
    text_space = info.space("text")
    client.ingest(name, [(f"doc{i}.txt", t.encode()) for i, t in enumerate(TEXTS)])

    emb = client.embed(name, TEXTS)
    assert isinstance(emb, agentdb.Embeddings)
    assert emb.vectors.dtype == np.float32 and emb.shape == (3, 384) and emb.dim == 384 and len(emb) == 3
    assert emb.encoder == text_space.encoder and emb.encoder.startswith("all-minilm")
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-3)
    assert np.asarray(emb).shape == (3, 384) and emb[1].shape == (384,)
    # The same texts give the same vectors; the space named explicitly too; a single str.
    np.testing.assert_allclose(client.embed(name, TEXTS[1:2], space="text").vectors[0], emb[1], atol=1e-5)
    np.testing.assert_allclose(client.embed(name, TEXTS[2]).vectors[0], emb[2], atol=1e-5)

    for i, text in enumerate(TEXTS):
        # A vector search with the embedding of a document's exact text finds it first...
        by_vec = client.search(name, emb[i], space="text", top_k=3, with_vectors=True)
        assert by_vec[0].payload["source"] == f"doc{i}.txt" and by_vec[0].score > 0.999
        # ... it is the vector the server stored for that document ...
        np.testing.assert_allclose(by_vec[0].vector, emb[i], atol=1e-4)
        # ... and the one a text search uses: same hits, same scores.
        by_text = client.search(name, text=text, space="text", top_k=3, mode="dense", fusion="weighted")
        assert by_text.ids == by_vec.ids
        np.testing.assert_allclose(by_text.scores, by_vec.scores, atol=1e-4)


def test_embed_then_upsert_with_the_encoder(client, unique):
    name = unique("embedup")
    client.create_collection(name, multimodal=True)
    emb = client.embed(name, TEXTS)
    # Columns: the Embeddings carry their encoder id into the upsert.
    res = client.upsert(name, ids=["a", "b", "c"], vectors=emb, payloads=[{"text": t} for t in TEXTS], space="text")
    assert res.ids == ["a", "b", "c"]
    hits = client.search(name, text="baking bread at home", space="text", top_k=1, mode="dense")
    assert hits.ids == ["a"]
    # Items with encoders per space.
    client.upsert(name, [agentdb.Item(id="d", vectors={"text": emb[1]}, encoders={"text": emb.encoder})])
    client.upsert(name, [{"id": "e", "vectors": {"text": emb[2]}, "encoders": {"text": emb.encoder}}])
    assert client.count(name) == 5
    # A vector claiming another encoder is refused for the space.
    with pytest.raises(agentdb.InvalidArgument):
        client.upsert(name, ids=["x"], vectors=emb[:1], space="text", encoder="clip-vit-b-32@onnx")
    with pytest.raises(ValueError):
        client.upsert(name, ids=["x"], vectors=emb[:1], space="text", encoder="other")  # not the embeddings'
    with pytest.raises(ValueError):
        client.upsert(name, [agentdb.Item(id="y", vector=emb[0], encoders={"nope": emb.encoder})])


def test_embed_errors(client, unique):
    name = unique("embederr")
    client.create_collection(name, multimodal=True)
    raw = unique("embedraw")
    client.create_collection(raw, 8)
    with pytest.raises(agentdb.NotFound):
        client.embed(unique("missing"), ["hello"])
    with pytest.raises(agentdb.InvalidArgument):
        client.embed(name, [])
    with pytest.raises(agentdb.InvalidArgument):
        client.embed(name, ["fine", "   "])
    with pytest.raises(agentdb.InvalidArgument):
        client.embed(name, ["x"] * (1024 + 1))
    with pytest.raises(agentdb.InvalidArgument):
        client.embed(raw, ["a collection of raw vectors has no text encoder"])
    with pytest.raises(agentdb.NotFound):  # an unknown space, like an unknown collection
        client.embed(name, ["hello"], space="nope")
    assert len(client.embed(name, ["x"] * 1024)) == 1024


def test_embed_needs_read_access(server, unique):
    name = unique("embedkey")
    with agentdb.Client(server.url, api_key=server.admin_key) as admin:
        admin.create_collection(name, multimodal=True)
        other = unique("embedother")
        admin.create_collection(other, multimodal=True)
        key = admin.create_key(unique("reader"), "reader", collections=[name])
    with agentdb.Client(server.url, api_key=key.secret) as reader:
        assert reader.embed(name, ["readers may embed"]).dim == 384
        with pytest.raises(agentdb.PermissionDenied):
            reader.embed(other, ["not this collection"])
