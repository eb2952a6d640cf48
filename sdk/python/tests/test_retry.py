"""Retries against a server with a request rate limit (20/s, burst 2) and a storage quota
(3 items per principal): refusals carry `retry-after-ms`, which the clients honour."""

from __future__ import annotations

import time

import pytest

import agentdb
from conftest import make_client

# Backoff alone (1-2 ms, 4 attempts) is far shorter than the bucket needs to refill (50 ms):
# these calls succeed only because the client waits for the server's retry-after-ms hint.
PATIENT = agentdb.RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.002)


def test_rate_limit_surfaces_retry_after_without_retries(kind, limited_server):
    c = make_client(kind, limited_server.url, api_key=limited_server.admin_key, retries=0)
    try:
        with pytest.raises(agentdb.ResourceExhausted) as e:
            for _ in range(10):
                c.list_collections()
        err = e.value
        assert err.code.name == "RESOURCE_EXHAUSTED" and "rate limit" in err.details
        assert err.retry_after is not None and 0 < err.retry_after <= 0.1
        assert err.metadata.get("retry-after-ms") == str(round(err.retry_after * 1000))
    finally:
        c.close()
    time.sleep(0.2)  # refill the bucket


def test_reads_and_writes_are_retried_after_the_hint(kind, limited_server, unique):
    c = make_client(kind, limited_server.url, api_key=limited_server.admin_key, retries=PATIENT)
    try:
        coll = unique("rl")
        c.create_collection(coll, 2)
        t = time.monotonic()
        for _ in range(10):
            assert c.count(coll) == 0
        # 10 calls (+1 before) at 20/s with a burst of 2 need at least ~0.4 s: they waited.
        assert time.monotonic() - t >= 0.35
        # Writes with generated ids (not idempotent) are retried only because the rate
        # limiter refused them before they ran: each is applied exactly once.
        ids = [c.upsert(coll, [{"vector": [1, k], "payload": {"k": k}}]).ids[0] for k in range(3)]
        assert c.count(coll) == 3
        # Deleting by id credits the items back to the principal's storage quota (3 items).
        assert c.delete(coll, ids) == 3
    finally:
        c.close()
    time.sleep(0.2)


def test_storage_quota_is_not_retried(kind, limited_server, unique):
    admin = make_client(kind, limited_server.url, api_key=limited_server.admin_key, retries=PATIENT)
    try:
        coll = unique("quota")
        admin.create_collection(coll, 2)
        key = admin.create_key(unique("w"), "writer")
    finally:
        admin.close()
    # A policy that would wait a long time if it retried.
    slow = agentdb.RetryPolicy(max_attempts=5, initial_backoff=2.0)
    w = make_client(kind, limited_server.url, api_key=key.secret, retries=slow)
    try:
        w.upsert(coll, ids=["a", "b", "c"], vectors=[[1, 0], [0, 1], [1, 1]])
        t = time.monotonic()
        with pytest.raises(agentdb.ResourceExhausted) as e:
            w.upsert(coll, ids=["d"], vectors=[[2, 2]])
        assert time.monotonic() - t < 1.0
        assert e.value.retry_after is None and "quota" in e.value.details
    finally:
        w.close()
    time.sleep(0.2)
