"""Collections, items and vector search, through the sync and the asyncio client."""

from __future__ import annotations

import numpy as np
import pytest

import agentdb


def test_collection_lifecycle(client, unique):
    name = unique("coll")
    info = client.create_collection(name, 8, metric="l2", index="Flat")
    assert isinstance(info, agentdb.CollectionInfo)
    assert info.name == name and info.count == 0
    assert info.space() == agentdb.Space(name="default", dim=8, metric="l2", index="Flat")
    with pytest.raises(agentdb.AlreadyExists) as e:
        client.create_collection(name, 8)
    assert e.value.code.name == "ALREADY_EXISTS" and name in e.value.details
    assert name in [c.name for c in client.list_collections()]
    two = client.create_collection(
        unique("spaces"),
        spaces=[agentdb.Space("a", 3), {"name": "b", "dim": 2, "metric": "ip"}],
        keyword_language="french",
    )
    assert [(s.name, s.dim, s.metric) for s in two.spaces] == [("a", 3, "cosine"), ("b", 2, "ip")]
    assert two.keyword_language == "french"
    client.upsert(name, vectors=np.ones((5, 8)))
    flushed = client.flush(name, optimize=True)
    assert flushed.count == 5 and flushed.unindexed == 0
    assert client.get_collection(name).count == 5
    client.drop_collection(name)
    with pytest.raises(agentdb.NotFound):
        client.get_collection(name)
    with pytest.raises(agentdb.NotFound):
        client.drop_collection(name)
    with pytest.raises(ValueError):
        client.create_collection(unique("nospace"))


def test_numpy_round_trip_and_filters(client, unique):
    name = unique("items")
    client.create_collection(name, 4, metric="ip", index="Flat")
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((6, 4)).astype(np.float64)  # float64 in, float32 out
    ids = [f"v{i}" for i in range(6)]
    payloads = [{"color": "red" if i % 2 == 0 else "blue", "n": i, "tags": ["x"] if i < 2 else []} for i in range(6)]
    res = client.upsert(name, ids=ids, vectors=vecs, payloads=payloads)
    assert res.ids == ids
    got = client.get(name, ["v3", "missing", "v0"], with_vectors=True)
    assert [i.id for i in got] == ["v3", "v0"]
    assert got[0].vector.dtype == np.float32
    np.testing.assert_allclose(got[0].vector, vecs[3].astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(got[1].vectors["default"], vecs[0].astype(np.float32), rtol=1e-6)
    assert got[0].payload == payloads[3]
    assert client.get(name, "v1")[0].vector is None  # without with_vectors

    # Item objects, dicts, generated ids and numpy scalars in payloads.
    more = client.upsert(
        name,
        [
            agentdb.Item(id="i1", vector=np.array([1, 0, 0, 0], dtype=np.float32), payload={"color": "green"}),
            {"vector": [0, 1, 0, 0], "payload": {"color": "green", "n": np.int64(42)}},
        ],
    )
    assert more.ids[0] == "i1" and len(more.ids[1]) > 0
    assert client.get(name, more.ids[1])[0].payload == {"color": "green", "n": 42}
    assert client.count(name) == 8
    assert client.count(name, 'color = "red"') == 3
    assert client.count(name, 'color = "red" and n >= 2') == 2
    assert client.count(name, 'tags in ["x"]') == 2

    q = vecs[4]
    hits = client.search(name, q, top_k=3, with_vectors=True, exact=True)
    assert isinstance(hits, agentdb.SearchResult) and len(hits) == 3
    expected = np.argsort(-(vecs.astype(np.float32) @ q.astype(np.float32)))
    assert hits[0].id == f"v{expected[0]}"
    assert hits.scores.dtype == np.float32 and list(hits.scores) == sorted(hits.scores, reverse=True)
    np.testing.assert_allclose(hits[0].vector, vecs[expected[0]].astype(np.float32), rtol=1e-6)
    red = client.search(name, q, top_k=10, filter='color = "red"')
    assert sorted(red.ids) == ["v0", "v2", "v4"] and all(h.payload["color"] == "red" for h in red)
    bare = client.search(name, q, top_k=2, with_payload=False)
    assert bare[0].payload == {}

    batch = client.search_batch(name, np.stack([vecs[0], vecs[1]]), top_k=2, filter='color = "blue"')
    assert len(batch) == 2 and all(h.payload["color"] == "blue" for r in batch for h in r)

    with pytest.raises(agentdb.InvalidArgument) as e:
        client.search(name, q, filter="color = = red")
    assert e.value.code.name == "INVALID_ARGUMENT"
    with pytest.raises(agentdb.InvalidArgument):
        client.search(name, [1.0, 2.0])  # wrong dimension

    assert client.delete(name, ["v0", "v1"]) == 2
    assert client.delete(name, filter='color = "green"') == 2
    assert client.count(name) == 4
    with pytest.raises(ValueError):
        client.delete(name)


def test_scroll_pages_through_items_in_id_order(client, unique):
    name = unique("scroll")
    client.create_collection(name, 2, metric="ip", index="Flat")  # ip: vectors stored as given
    ids = [f"k{i:02d}" for i in range(25)]
    vecs = np.array([[i, 1] for i in range(25)], dtype=np.float32)
    order = np.random.default_rng(3).permutation(25)  # written out of id order
    client.upsert(
        name, ids=[ids[i] for i in order], vectors=vecs[order],
        payloads=[{"n": int(i), "even": bool(i % 2 == 0)} for i in order],
    )

    pages, after = [], ""
    while True:
        page = client.scroll(name, after=after, limit=10)
        assert isinstance(page, agentdb.ScrollPage)
        pages.append(page)
        if page.done:
            break
        after = page.next_after
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [p.next_after for p in pages] == ["k09", "k19", ""]
    assert [i for p in pages for i in p.ids] == ids  # in order, each once
    assert pages[0][0].payload == {"n": 0, "even": True} and pages[0][0].vector is None
    assert client.scroll(name, after="k22").ids == ["k23", "k24"]
    assert len(client.scroll(name)) == 25  # the server's default page (100)

    # A filter, vectors, ids without payloads.
    even = client.scroll(name, "even = true", limit=5, with_vectors=True, with_payload=False)
    assert even.ids == ["k00", "k02", "k04", "k06", "k08"] and even.next_after == "k08"
    assert even[1].payload == {} and even[1].vector.dtype == np.float32
    np.testing.assert_allclose(even[1].vector, vecs[2])
    np.testing.assert_allclose(even[1].vectors["default"], vecs[2])

    # Every page, lazily.
    assert [it.id for it in client.iter_items(name, page_size=10)] == ids
    late = list(client.iter_items(name, "n >= 20", page_size=2, with_vectors=True))
    assert [it.id for it in late] == ids[20:] and [it.payload["n"] for it in late] == list(range(20, 25))
    np.testing.assert_allclose(np.stack([it.vector for it in late]), vecs[20:])
    assert list(client.iter_items(name, after="k24")) == []

    with pytest.raises(agentdb.InvalidArgument):
        client.scroll(name, limit=1001)
    with pytest.raises(agentdb.InvalidArgument):
        client.scroll(name, "n = = 1")
    with pytest.raises(agentdb.NotFound):
        client.scroll(unique("missing"))


def test_l2_scores_are_distances(client, unique):
    name = unique("l2")
    client.create_collection(name, 2, metric="l2", index="Flat")
    client.upsert(name, ids=["near", "far"], vectors=[[1, 1], [5, 5]])
    hits = client.search(name, np.array([1.0, 2.0]), top_k=2)
    assert hits.ids == ["near", "far"]
    assert hits[0].score == pytest.approx(1.0) and hits[1].score == pytest.approx(25.0)


def test_server_status_models_and_admin(client, server):
    st = client.status()
    assert st.version and st.uptime_seconds > 0 and st.device == "cpu"
    assert st.data_dir.rstrip("/").endswith("main")
    models = {m.name: m for m in client.list_models()}
    assert "all-minilm-l6-v2" in models and models["all-minilm-l6-v2"].dim == 384
    assert isinstance(client.alerts(), list)
    prev = client.set_log_level("info")
    assert isinstance(prev, str) and prev
    client.set_log_level(prev)
    client.inject_fault(0)
    cs = client.cluster_status()
    assert cs.enabled is False and cs.nodes == ()


def test_search_deadline_is_typed(kind, server, unique):
    from conftest import make_client

    c = make_client(kind, server.url, api_key=server.admin_key, timeout=0.3, retries=0)
    try:
        name = unique("slow")
        c.create_collection(name, 2)
        c.upsert(name, ids=["a"], vectors=[[1, 0]])
        c.inject_fault(1500)
        try:
            with pytest.raises(agentdb.DeadlineExceeded):
                c.search(name, [1, 0])
        finally:
            c.inject_fault(0)
        assert c.search(name, [1, 0]).ids == ["a"]
    finally:
        c.close()
