"""Offline checks: the public surface, sync/async parity, error mapping, retry policy."""

from __future__ import annotations

import inspect

import grpc
import numpy as np
import pytest

import agentdb
from agentdb._errors import from_rpc_error
from agentdb._retry import is_retryable


def _public(cls):
    return {n: m for n, m in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_sync_and_async_clients_have_the_same_methods():
    sync, aio = _public(agentdb.Client), _public(agentdb.AsyncClient)
    assert set(sync) == set(aio)
    for name in sync:
        assert inspect.signature(sync[name]).parameters == inspect.signature(aio[name]).parameters, name
        # subscribe returns an async iterator, iter_items is an async generator; the rest are awaited.
        assert inspect.iscoroutinefunction(aio[name]) == (name not in ("subscribe", "iter_items")), name
    assert inspect.isasyncgenfunction(aio["iter_items"]) and inspect.isgeneratorfunction(sync["iter_items"])
    assert len(sync) >= 45


def test_package_is_typed():
    import importlib.resources as r

    assert (r.files("agentdb") / "py.typed").is_file()


class FakeError(grpc.RpcError):
    def __init__(self, code, details, trailing=()):
        self._c, self._d, self._t = code, details, trailing

    def code(self):
        return self._c

    def details(self):
        return self._d

    def trailing_metadata(self):
        return self._t


def test_error_mapping_and_retry_hint():
    e = from_rpc_error(FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit", (("retry-after-ms", "250"),)))
    assert isinstance(e, agentdb.ResourceExhausted) and e.retry_after == 0.25 and e.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    e = from_rpc_error(FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "exceeded; retry after 40 ms"))
    assert e.retry_after == 0.04
    quota = from_rpc_error(FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "storage quota of 3 items exceeded"))
    assert quota.retry_after is None
    assert isinstance(from_rpc_error(FakeError(grpc.StatusCode.NOT_FOUND, "x")), LookupError)
    assert isinstance(from_rpc_error(FakeError(grpc.StatusCode.CANCELLED, "Timeout expired")), agentdb.DeadlineExceeded)
    assert type(from_rpc_error(FakeError(grpc.StatusCode.UNAVAILABLE, "down"))) is agentdb.Unavailable

    hinted = from_rpc_error(FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "x", (("retry-after-ms", "100"),)))
    overloaded = from_rpc_error(FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "server overloaded: more than 5"))
    down = from_rpc_error(FakeError(grpc.StatusCode.UNAVAILABLE, "down"))
    aborted = from_rpc_error(FakeError(grpc.StatusCode.ABORTED, "conflict"))
    internal = from_rpc_error(FakeError(grpc.StatusCode.INTERNAL, "boom"))
    for write in (False, True):
        idem = not write
        assert is_retryable(hinted, idem) and is_retryable(overloaded, idem) and is_retryable(down, idem)
        assert not is_retryable(quota, idem) and not is_retryable(internal, idem)
    assert is_retryable(aborted, True) and not is_retryable(aborted, False)


def test_retry_policy_backoff_is_bounded_and_honours_hint():
    p = agentdb.RetryPolicy(max_attempts=4, initial_backoff=0.1, max_backoff=0.3, jitter=0.0)
    assert [p.backoff(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    hinted = from_rpc_error(FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED, "x", (("retry-after-ms", "1500"),)))
    assert p.delay(hinted, 1, False) == pytest.approx(1.5)
    assert p.delay(hinted, 4, False) is None  # attempts used up
    assert agentdb.RetryPolicy(max_retry_after=1.0).delay(hinted, 1, True) is None
    assert agentdb.RetryPolicy.none().delay(hinted, 1, True) is None


def test_client_side_validation():
    c = agentdb.Client("127.0.0.1:1")
    try:
        with pytest.raises(ValueError):
            c.upsert("x", vectors=np.zeros((2, 2, 2)))
        with pytest.raises(ValueError):
            c.upsert("x", ids=["a"], vectors=np.zeros((2, 3)))
        with pytest.raises(ValueError):
            c.search("x", [1, 2], mode="fuzzy")
        with pytest.raises(ValueError):
            c.create_collection("x", 3, metric="hamming")
        with pytest.raises(ValueError):
            c.scroll("x", limit=0)
    finally:
        c.close()
    with pytest.raises(ValueError):
        agentdb.Client("127.0.0.1:1", api_key="a", token="b")
    with pytest.raises(ValueError):
        agentdb.Client("ftp://127.0.0.1:1")


def test_unreachable_server_is_unavailable_after_retries():
    import time

    policy = agentdb.RetryPolicy(max_attempts=3, initial_backoff=0.05, jitter=0.0)
    with agentdb.Client("127.0.0.1:1", retries=policy, timeout=2) as c:
        t = time.monotonic()
        with pytest.raises(agentdb.Unavailable):
            c.list_collections()
        assert time.monotonic() - t >= 0.15  # two backoffs: 0.05 + 0.1
