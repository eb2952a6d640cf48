"""The search hot path (benches/sdk): request building sends only non-default fields and
hit parsing builds the same frozen Hit objects as their constructor. No server needed."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest

from agentdb import Hit, ListScore
from agentdb import _convert as ops
from agentdb._proto import agentdb_pb2 as pb

DEFAULTS = dict(
    text=None, image=None, audio=None, video=None, keyword=None, top_k=10, filter="", space="",
    with_payload=True, with_vectors=False, explain=False, mode=None, fusion=None, weights=None,
    keyword_fields=None, exact=False, ef=0, nprobe=0, consistency_token="", allow_stale=False,
)


def test_parsed_hits_equal_constructed_ones():
    msgs = [
        pb.Hit(id="a", score=0.5, payload_json=json.dumps({"i": 1})),
        pb.Hit(id="b", score=1.5),
        pb.Hit(id="c", score=2.0, vector=pb.Vector(values=[1.0, 2.0]), source="s", modality="text", part="chunk 1/2"),
        pb.Hit(id="d", score=3.0, explain=[pb.ListScore(list="t/text", rank=2, score=0.25, contribution=0.125, matched=["x"], snippet="sn", coverage=0.5)]),
    ]
    got = ops.hits(msgs)
    want = [
        Hit(id="a", score=0.5, payload={"i": 1}),
        Hit(id="b", score=1.5, payload={}),
        Hit(id="c", score=2.0, payload={}, vector=np.array([1.0, 2.0], dtype=np.float32), source="s", modality="text", part="chunk 1/2"),
        Hit(id="d", score=3.0, payload={}, explain=(ListScore(list="t/text", rank=2, score=0.25, contribution=0.125, matched=("x",), snippet="sn", coverage=0.5),)),
    ]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g) is Hit
        for f in dataclasses.fields(Hit):
            gv, wv = getattr(g, f.name), getattr(w, f.name)
            if isinstance(wv, np.ndarray):
                assert gv.dtype == np.float32 and np.array_equal(gv, wv)
            else:
                assert gv == wv and type(gv) is type(wv), f.name
    assert got[0] == want[0] and repr(got[1]) == repr(want[1]) and got[3] == want[3]
    assert pickle.loads(pickle.dumps(got[0])) == got[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        got[0].id = "z"  # type: ignore[misc]


def test_search_request_sends_only_what_was_asked():
    req = ops.search("c", np.arange(4, dtype=np.float32), **DEFAULTS).request
    assert [f.name for f, _ in req.ListFields()] == ["collection", "vector", "top_k", "with_payload"]
    # Vectors travel packed (little-endian float32), not as a Python float per element.
    assert not req.vector.values and [f.name for f, _ in req.vector.ListFields()] == ["packed"]
    assert np.frombuffer(req.vector.packed, dtype="<f4").tolist() == [0.0, 1.0, 2.0, 3.0]
    assert req.top_k == 10 and req.with_payload
    mat = np.arange(6, dtype=np.float64).reshape(2, 3)[:, ::-1]  # float64, not contiguous
    b = ops.search_batch("c", mat, 10, "", "", True, False, False, 0, 0).request
    assert [np.frombuffer(v.packed, dtype="<f4").tolist() for v in b.vectors] == [[2, 1, 0], [5, 4, 3]]
    u = ops.upsert("c", None, ["a", "b"], mat, None, "", "e5").request
    assert [np.frombuffer(i.vectors[""].packed, dtype="<f4").tolist() for i in u.items] == [[2, 1, 0], [5, 4, 3]]
    assert [i.vectors[""].encoder for i in u.items] == ["e5", "e5"]
    opts = dict(
        DEFAULTS, filter="a = 1", space="s", with_vectors=True, explain=True, mode="Hybrid", fusion="rrf",
        weights={"a/b": 2.0}, keyword_fields={"t": 1.0}, ef=5, exact=True, nprobe=3, consistency_token="0:1",
        allow_stale=True, text="hi", keyword="kw", image=b"img", audio=b"aud", video=b"vid", with_payload=False,
    )
    req = ops.search("c", None, **opts).request
    assert (req.filter, req.space, req.with_vectors, req.explain, req.with_payload) == ("a = 1", "s", True, True, False)
    assert req.mode == pb.RETRIEVAL_HYBRID and req.fusion == pb.FUSION_RRF
    assert dict(req.weights) == {"a/b": 2.0} and dict(req.keyword_fields) == {"t": 1.0}
    assert (req.params.ef, req.params.exact, req.params.nprobe) == (5, True, 3)
    assert (req.consistency_token, req.allow_stale, req.text, req.keyword_query) == ("0:1", True, "hi", "kw")
    assert (req.image, req.audio, req.video) == (b"img", b"aud", b"vid") and not req.HasField("vector")
    for bad in (dict(DEFAULTS, mode="nope"), dict(DEFAULTS, fusion="nope")):
        with pytest.raises(ValueError):
            ops.search("c", [1.0], **bad)


def test_empty_payloads_are_fresh_dicts():
    hs = ops.hits([pb.Hit(id="a", payload_json="{}"), pb.Hit(id="b", payload_json="{}"), pb.Hit(id="c")])
    assert [h.payload for h in hs] == [{}, {}, {}]
    hs[0].payload["x"] = 1  # a caller's change to one hit's payload touches no other
    assert hs[1].payload == {} and hs[2].payload == {}
    assert ops.hits([pb.Hit(id="d", payload_json='{"k": [1]}')])[0].payload == {"k": [1]}
