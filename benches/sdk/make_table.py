#!/usr/bin/env python3
"""Turn the JSON lines of benches/sdk/bench.sh (one per measurement) into markdown
tables: per language, the SDK (and REST) against the raw-gRPC baseline of the same
language on the same server. Values are medians over the rounds; a ratio is the median
of the per-round ratios (each round measured both clients back to back, A B / B A).

  make_table.py results.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from typing import Dict, List, Tuple

LANG = {"python": "Python", "typescript": "TypeScript", "go": "Go", "rust": "Rust"}
CLIENT = {
    ("python", "raw"): "raw gRPC (grpcio stubs)",
    ("python", "sdk"): "SDK (`agentdb.Client` / `AsyncClient`)",
    ("python", "rest"): "REST (`http.client` keep-alive, JSON)",
    ("typescript", "raw"): "raw gRPC (grpc-js + proto-loader)",
    ("typescript", "sdk"): "SDK (`@agentdb/client`)",
    ("go", "raw"): "raw gRPC (agentdbpb stubs)",
    ("go", "sdk"): "SDK (`agentdb.Client`)",
    ("rust", "raw"): "raw gRPC (tonic, `agentdb bench search`; its own random queries)",
}
MODE = {
    "qps_threads": "{} threads",
    "qps_asyncio": "asyncio, {} in flight",
    "qps_async": "{} promises in flight",
    "qps_goroutines": "{} goroutines",
    "qps_tasks": "{} tokio tasks",
}
ORDER = ["python", "typescript", "go", "rust"]


def mode_label(kind: str) -> str:
    for prefix, fmt in MODE.items():
        if kind.startswith(prefix) and kind[len(prefix):].isdigit():
            return fmt.format(kind[len(prefix):])
    return kind


def client_label(lang: str, client: str) -> str:
    if (lang, client) in CLIENT:
        return CLIENT[(lang, client)]
    if client.startswith("sdk@"):
        return f"SDK as of `{client[4:]}`"
    return client


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
    # (lang, case, kind, client) -> round -> record
    by: Dict[Tuple[str, str, str, str], Dict[int, dict]] = defaultdict(dict)
    for r in rows:
        by[(r["lang"], r["case"], r["kind"], r["client"])][r.get("round", 0)] = r

    def med(key: Tuple[str, str, str, str], field: str, fmt: str = "{:.3f}") -> str:
        vals = [v[field] for v in by[key].values() if v.get(field) is not None]
        return fmt.format(statistics.median(vals)) if vals else "-"

    def ratio(key: Tuple[str, str, str, str], base: Tuple[str, str, str, str], field: str) -> str:
        if base not in by or key == base:
            return "1.00" if key == base else ""
        pairs = [
            v[field] / by[base][r][field]
            for r, v in by[key].items()
            if r in by[base] and v.get(field) is not None and by[base][r].get(field)
        ]
        if not pairs:
            return ""
        return f"{statistics.median(pairs):.2f}"

    def sort_key(k: Tuple[str, str, str, str]) -> tuple:
        lang, case, kind, client = k
        return (ORDER.index(lang) if lang in ORDER else 9, case, kind, ["raw", "sdk", "rest"].index(client) if client in ("raw", "sdk", "rest") else 1.5, client)

    keys = sorted(by, key=sort_key)
    print("Sequential latency (one request at a time, after warm-up):\n")
    print("| language | client | case | searches | p50 ms | p99 ms | mean ms | p50 / raw | mean / raw |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        lang, case, kind, client = k
        if kind != "latency":
            continue
        base = (lang, case, kind, "raw")  # REST (Python) is read against Python's raw gRPC
        n = sum(v.get("n", v.get("requests", 0)) for v in by[k].values())
        print(
            f"| {LANG.get(lang, lang)} | {client_label(lang, client)} | {case} | {n:,} | "
            f"{med(k, 'p50_ms')} | {med(k, 'p99_ms')} | {med(k, 'mean_ms')} | "
            f"{ratio(k, base, 'p50_ms')} | {ratio(k, base, 'mean_ms')} |"
        )
    print("\nThroughput (concurrent requests in flight, one client object or channel):\n")
    print("| language | client | case | concurrency | QPS | QPS / raw |")
    print("|---|---|---|---|---:|---:|")
    for k in keys:
        lang, case, kind, client = k
        if kind == "latency":
            continue
        base = (lang, case, kind, "raw")  # REST (Python) is read against Python's raw gRPC
        print(
            f"| {LANG.get(lang, lang)} | {client_label(lang, client)} | {case} | {mode_label(kind)} | "
            f"{med(k, 'qps', '{:,.0f}')} | {ratio(k, base, 'qps')} |"
        )


if __name__ == "__main__":
    main()
