#!/usr/bin/env bash
# Cluster mode numbers (docs/PERFORMANCE.md, "Cluster mode"): write throughput and search
# QPS of a sharded collection through one node of a 1-, 2- and 3-node cluster on a
# 3-server NATS JetStream cluster, against a single node without NATS, all in one run on
# this machine (every process shares its cores: this measures the cluster's overheads,
# not scale-out), then the catch-up rate of replicas moved onto a joining fourth node.
# Usage: bash benches/cluster/bench.sh [N_ITEMS] [DIM]
set -euo pipefail
N=${1:-20000}
DIM=${2:-128}
BIN=${AGENTDB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}/release/agentdb}
NATS=${NATS_SERVER:-$HOME/.cache/agentdb/bin/nats-server}
OUT=${BENCH_OUT:-$PWD/cluster-bench}
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$OUT"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_node() { # data-dir extra-args... -> prints the gRPC address
  local d=$1; shift
  "$BIN" serve --data-dir "$d" --listen 127.0.0.1:0 --set http_listen= "$@" >"$d.out" 2>"$d.log" &
  PIDS+=($!)
  until grep -q "^agentdb listening" "$d.out" 2>/dev/null; do sleep 0.1; done
  sed -n 's/^agentdb listening on //p' "$d.out"
}
bench() { # label address shards
  local label=$1 addr=$2 shards=$3
  echo "bench: $label" >&2
  "$BIN" bench search --server "http://$addr" --n "$N" --dim "$DIM" --index HNSW32 --metric l2 \
    --duration 5 --concurrency 4 --queries 200 --no-baseline --shards "$shards" --replicas "$([ "$shards" -gt 0 ] && echo 1 || echo 0)" --json \
    --collection "bench-$label" --keep \
    >"$OUT/$label.json" 2>"$OUT/$label.log"
}

# The baseline: one node, no cluster.
bench single "$(start_node "$W/single")" 0

# A 3-server JetStream cluster.
P=() C=()
for i in 0 1 2; do P+=("$(port)"); C+=("$(port)"); done
ROUTES="nats://127.0.0.1:${C[0]},nats://127.0.0.1:${C[1]},nats://127.0.0.1:${C[2]}"
for i in 0 1 2; do
  "$NATS" -a 127.0.0.1 -p "${P[$i]}" -js -sd "$W/nats$i" -n "nats$i" --cluster_name bench \
    --cluster "nats://127.0.0.1:${C[$i]}" --routes "$ROUTES" >"$W/nats$i.log" 2>&1 &
  PIDS+=($!)
done
URLS="nats://127.0.0.1:${P[0]},nats://127.0.0.1:${P[1]},nats://127.0.0.1:${P[2]}"
sleep 2
# 1, 2 and 3 nodes, 3 shards x 1 replica, measured through the first node.
ADDRS=()
for n in 1 2 3; do
  ADDRS+=("$(start_node "$W/n$n" --cluster "$URLS" --node-id "n$n")")
  sleep 2
  bench "cluster-$n" "${ADDRS[0]}" 3
done
# Catch-up: a fourth node joins; the leader moves replicas onto it (one at a time, each
# switched once caught up); how fast does a new replica replay its shard's stream?
start_node "$W/n4" --cluster "$URLS" --node-id n4 >/dev/null
python3 - "$BIN" "${ADDRS[0]}" "$N" "$OUT" <<'PY'
import json, subprocess, sys, time
bin_, addr, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def status():
    r = subprocess.run([bin_, "--server", "http://" + addr, "cluster", "status", "--json"], capture_output=True, text=True)
    return json.loads(r.stdout)
seen, done, t_start = {}, {}, time.time()
while time.time() - t_start < 120:
    st, now = status(), time.time()
    for c in st["collections"]:
        total = sum(s["last_seq"] for s in c["shard_status"]) or 1
        for s in c["shard_status"]:
            key = (c["name"], s["shard"])
            for r in s["replicas"]:
                if r["node"] != "n4":
                    continue
                seen.setdefault(key, (now, n * s["last_seq"] / total))
                if r["applied"] >= s["last_seq"] and key not in done:
                    done[key] = now
    n4 = next((x for x in st["nodes"] if x["id"] == "n4"), None)
    if seen and len(done) == len(seen) and n4 and n4["replicas"] == len(seen) and time.time() - max(done.values()) > 3:
        break
    time.sleep(0.2)
items = sum(v[1] for k, v in seen.items() if k in done)
span = (max(done.values()) - min(v[0] for v in seen.values())) if done else 0
rate = items / span if span > 0 else 0
res = {"replicas_moved": len(done), "items_replayed": round(items), "seconds": round(span, 2), "items_per_s": round(rate)}
json.dump(res, open(out + "/catch-up.json", "w"))
print(f"catch-up: a joining node took {len(done)} shard replicas ({items:,.0f} items) in {span:.1f} s from the first assignment "
      f"to the last caught up: {rate:,.0f} items/s (one replica at a time, {sys.argv[3]} items per collection)", file=sys.stderr)
PY

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
rows = []
for label in ["single", "cluster-1", "cluster-2", "cluster-3"]:
    p = os.path.join(out, label + ".json")
    if not os.path.exists(p):
        continue
    r = json.load(open(p))
    s = r.get("served", {})
    rows.append((label, r.get("load_items_per_s", 0), s.get("qps", 0), s.get("p50_ms", 0), s.get("p99_ms", 0), s.get("recall", 0)))
base = rows[0] if rows else None
print("| setup | load items/s | search QPS (4 clients) | p50 ms | p99 ms | recall@10 |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]:,.0f} ({r[1]/base[1]:.2f}x) | {r[2]:,.0f} ({r[2]/base[2]:.2f}x) | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.3f} |")
c = os.path.join(out, "catch-up.json")
if os.path.exists(c):
    c = json.load(open(c))
    print(f"\ncatch-up of a joining node: {c['replicas_moved']} replicas, {c['items_replayed']:,} items in {c['seconds']} s = {c['items_per_s']:,} items/s")
PY
