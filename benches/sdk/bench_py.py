#!/usr/bin/env python3
"""Python side of benches/sdk/bench.sh: search round trips through the Python SDK
(`agentdb.Client` / `agentdb.AsyncClient`), through raw gRPC (the generated stubs in
`agentdb._proto` on a plain `grpc.insecure_channel` / `grpc.aio` channel) and through the
REST gateway (`http.client`, one keep-alive connection per worker), on the same server,
collection and query vectors. Variants alternate A B / B A per round so that drift
(CPU load, caches) falls on both. One JSON line per measurement on stdout.

  bench_py.py --grpc HOST:PORT --http HOST:PORT --collection C --queries Q.json --k 10
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List

import grpc
import numpy as np

import agentdb
from agentdb._proto import agentdb_pb2 as pb
from agentdb._proto import agentdb_pb2_grpc as pbg


def pct(sorted_ms: List[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(round(p / 100.0 * (len(sorted_ms) - 1))))]


def emit(**kv: Any) -> None:
    print(json.dumps(kv), flush=True)


def latency(fn: Callable[[Any], Any], queries: List[Any], n: int, warmup: int) -> Dict[str, float]:
    for i in range(warmup):
        fn(queries[i % len(queries)])
    lat = []
    perf = time.perf_counter
    for i in range(n):
        q = queries[i % len(queries)]
        t = perf()
        fn(q)
        lat.append((perf() - t) * 1e3)
    lat.sort()
    return {"n": n, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "mean_ms": sum(lat) / n}


def qps_threads(make_fn: Callable[[], Callable[[Any], Any]], queries: List[Any], conc: int, seconds: float) -> Dict[str, float]:
    """`conc` threads, each with its own call function (shared channel for gRPC, one
    connection each for REST), calling back to back for `seconds`."""
    fns = [make_fn() for _ in range(conc)]
    for f in fns:  # warm every connection
        f(queries[0])
    counts = [0] * conc
    stop = threading.Event()
    start = threading.Barrier(conc + 1)

    def work(w: int) -> None:
        f, i, c = fns[w], w, 0
        start.wait()
        while not stop.is_set():
            f(queries[i % len(queries)])
            i += conc
            c += 1
        counts[w] = c

    ts = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(conc)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    el = time.perf_counter() - t0
    return {"requests": sum(counts), "seconds": el, "qps": sum(counts) / el}


def qps_async(setup: Callable[[], Any], queries: List[Any], conc: int, seconds: float) -> Dict[str, float]:
    """`conc` coroutines on one event loop, each awaiting the search back to back.
    `setup()` (called inside the loop) returns (search coroutine function, close)."""

    async def run() -> Dict[str, float]:
        fn, close = setup()
        await fn(queries[0])
        done = [0]
        deadline = [0.0]

        async def work(w: int) -> None:
            i = w
            while time.perf_counter() < deadline[0]:
                await fn(queries[i % len(queries)])
                i += conc
                done[0] += 1

        t0 = time.perf_counter()
        deadline[0] = t0 + seconds
        await asyncio.gather(*(work(w) for w in range(conc)))
        el = time.perf_counter() - t0
        await close()
        return {"requests": done[0], "seconds": el, "qps": done[0] / el}

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True)
    ap.add_argument("--http", default="")
    ap.add_argument("--collection", required=True)
    ap.add_argument("--queries", required=True, help="JSON file: a list of query vectors")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n", type=int, default=2000, help="sequential searches per latency measurement")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0, help="per throughput measurement")
    ap.add_argument("--rounds", type=int, default=2, help="each round runs every client; order alternates")
    ap.add_argument("--case", default="")
    ap.add_argument("--clients", default="raw,sdk,rest")
    ap.add_argument(
        "--sdk-also",
        default="",
        metavar="LABEL=DIR",
        help="also measure another copy of the SDK (DIR holds its agentdb package, e.g. from "
        "`git archive REF sdk/python/agentdb`), as client LABEL: before/after in one run",
    )
    a = ap.parse_args()
    print(f"bench_py: agentdb from {agentdb.__file__}", file=sys.stderr)

    queries = [np.asarray(q, dtype=np.float32) for q in json.load(open(a.queries))]
    coll, k, case = a.collection, a.k, a.case or f"k={a.k}"
    clients = [c for c in a.clients.split(",") if c and (c != "rest" or a.http)]

    # --- raw gRPC: the generated stubs, as a user without the SDK would write it. The
    # request asks for the same thing the SDK's defaults ask for (payloads, no vectors),
    # and every client hands the caller the same thing: (id, score, payload as a dict),
    # so the raw baseline decodes the payload JSON as the SDK does.
    loads = json.loads
    channel = grpc.insecure_channel(a.grpc)
    raw_items = pbg.ItemsStub(channel)

    def raw_search(q: np.ndarray) -> Any:
        r = raw_items.Search(
            pb.SearchRequest(collection=coll, vector=pb.Vector(values=q.tolist()), top_k=k, with_payload=True)
        )
        return [(h.id, h.score, loads(h.payload_json) if h.payload_json else {}) for h in r.hits]

    # --- the SDK, default settings (30 s deadline, retries on).
    sdk = agentdb.Client(a.grpc)

    def sdk_search(q: np.ndarray) -> Any:
        return [(h.id, h.score, h.payload) for h in sdk.search(coll, q, top_k=k)]

    # --- REST gateway: JSON over HTTP/1.1 keep-alive, one connection per worker.
    def rest_fn() -> Callable[[np.ndarray], Any]:
        host, _, port = a.http.rpartition(":")
        conn = http.client.HTTPConnection(host, int(port))
        path = f"/v1/collections/{coll}/search"
        headers = {"content-type": "application/json"}

        def rest_search(q: np.ndarray) -> Any:
            body = json.dumps({"vector": {"values": q.tolist()}, "topK": k, "withPayload": True})
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"REST search: HTTP {resp.status}: {data[:200]!r}")
            return [(h["id"], h["score"], h.get("payload")) for h in json.loads(data).get("hits", [])]

        return rest_search

    rest_single = rest_fn() if "rest" in clients else None

    # --- asyncio variants (grpc.aio channel / agentdb.AsyncClient), made inside the loop.
    def aio_raw() -> Any:
        ch = grpc.aio.insecure_channel(a.grpc)
        stub = pbg.ItemsStub(ch)

        async def fn(q: np.ndarray) -> Any:
            r = await stub.Search(
                pb.SearchRequest(collection=coll, vector=pb.Vector(values=q.tolist()), top_k=k, with_payload=True)
            )
            return [(h.id, h.score, loads(h.payload_json) if h.payload_json else {}) for h in r.hits]

        return fn, ch.close

    def aio_sdk() -> Any:
        c = agentdb.AsyncClient(a.grpc)

        async def fn(q: np.ndarray) -> Any:
            return [(h.id, h.score, h.payload) for h in await c.search(coll, q, top_k=k)]

        return fn, c.close

    single = {"raw": raw_search, "sdk": sdk_search, "rest": rest_single}
    makers = {"raw": lambda: raw_search, "sdk": lambda: sdk_search, "rest": rest_fn}
    aio = {"raw": aio_raw, "sdk": aio_sdk}
    closers = [sdk.close]
    if a.sdk_also:
        label, _, d = a.sdk_also.partition("=")
        spec = importlib.util.spec_from_file_location(
            "agentdb_other", os.path.join(d, "__init__.py"), submodule_search_locations=[d]
        )
        other = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["agentdb_other"] = other
        spec.loader.exec_module(other)  # type: ignore[union-attr]
        print(f"bench_py: {label} = agentdb from {other.__file__}", file=sys.stderr)
        osdk = other.Client(a.grpc)
        closers.append(osdk.close)

        def other_search(q: np.ndarray) -> Any:
            return [(h.id, h.score, h.payload) for h in osdk.search(coll, q, top_k=k)]

        def aio_other() -> Any:
            c = other.AsyncClient(a.grpc)

            async def fn(q: np.ndarray) -> Any:
                return [(h.id, h.score, h.payload) for h in await c.search(coll, q, top_k=k)]

            return fn, c.close

        single[label], makers[label], aio[label] = other_search, (lambda: other_search), aio_other
        clients.insert(clients.index("sdk") + 1 if "sdk" in clients else len(clients), label)

    # Sanity: the clients return the same ids for the same query.
    ids = {c: [h[0] for h in single[c](queries[0])] for c in clients}  # type: ignore[misc]
    first = ids[clients[0]]
    for c, v in ids.items():
        if v != first:
            print(f"warning: {c} returned {v[:3]}... vs {first[:3]}...", file=sys.stderr)

    base = dict(lang="python", case=case, k=k, dim=int(queries[0].shape[0]))
    for r in range(a.rounds):
        order = clients if r % 2 == 0 else list(reversed(clients))
        for c in order:
            emit(**base, client=c, round=r, kind="latency", **latency(single[c], queries, a.n, a.warmup))  # type: ignore[arg-type]
            emit(**base, client=c, round=r, kind=f"qps_threads{a.concurrency}", **qps_threads(makers[c], queries, a.concurrency, a.seconds))
            if c in aio:
                emit(**base, client=c, round=r, kind=f"qps_asyncio{a.concurrency}", **qps_async(aio[c], queries, a.concurrency, a.seconds))
    for close in closers:
        close()
    channel.close()


if __name__ == "__main__":
    main()
