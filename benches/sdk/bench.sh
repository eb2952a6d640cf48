#!/usr/bin/env bash
# What each client SDK costs over raw gRPC (and REST over raw gRPC), on ONE fresh server:
#   bash benches/sdk/bench.sh [N] [DIM]           (default 20000 128)
# Loads N random DIM-d vectors (cosine, HNSW32, payload {"i": n}) with `agentdb bench
# search` (whose served phase is also the raw-gRPC-in-Rust reference), then per case
# (k=10, k=100) runs, for Python, TypeScript and Go, the raw-gRPC baseline and the SDK
# alternately (A B / B A per round) on the same 200 query vectors: sequential latency
# (p50/p99 over LAT_N searches after warm-up) and throughput with CONC requests in
# flight. Python also measures REST (JSON over keep-alive HTTP/1.1). Prints markdown
# tables (benches/sdk/make_table.py); raw results in $OUT/results.jsonl.
# Environment: ROUNDS (3), LAT_N (2000), DURATION (3 s) per throughput measurement,
# CONC (8), CASES ("10 100": the k values), LANGS ("python typescript go rust"),
# PY_SDK_REF (a git ref: also measure the Python SDK as of that commit, e.g. HEAD, as
# client "sdk@REF", for a before/after in one run), AGENTDB_BIN, AGENTDB_SDK_VENV, OUT.
# The SDKs measured are this checkout's: sdk/python from the source tree (the venv only
# provides grpcio and numpy), sdk/typescript/dist rebuilt from src, sdk/go via `replace`.
# Needs: the server binary; the Python SDK installed in the venv (sdk/python/run_tests.sh
# makes it); node and sdk/typescript/node_modules (sdk/typescript/run_tests.sh); Go and
# the Debian Go packages of sdk/go/run_tests.sh. A language whose toolchain is missing is
# skipped with a note.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
N="${1:-20000}"
DIM="${2:-128}"
ROUNDS="${ROUNDS:-3}"
LAT_N="${LAT_N:-2000}"
SECONDS_PER="${DURATION:-3}"
CONC="${CONC:-8}"
CASES="${CASES:-10 100}"
LANGS="${LANGS:-python typescript go rust}"
BIN="${AGENTDB_BIN:-$HOME/.cache/agentdb/target/release/agentdb}"
VENV="${AGENTDB_SDK_VENV:-$HOME/.cache/agentdb/sdk-venv}"
PY="$VENV/bin/python"
OUT="${OUT:-$(mktemp -d /tmp/agentdb-sdk-bench.XXXXXX)}"
mkdir -p "$OUT"
results="$OUT/results.jsonl"
: >"$results"

# The binary may be replaced by a rebuild: wait a little for it.
for _ in $(seq 1 30); do [ -x "$BIN" ] && break; sleep 2; done
[ -x "$BIN" ] || { echo "bench.sh: $BIN not found" >&2; exit 1; }
"$PY" -c 'import agentdb, numpy' 2>/dev/null || { echo "bench.sh: the Python SDK is not installed in $VENV (run sdk/python/run_tests.sh)" >&2; exit 1; }

note() { echo "== $*" >&2; }

# ---------------------------------------------------------------- build the drivers
have() { [[ " $LANGS " == *" $1 "* ]]; }
if have typescript; then
  if ! command -v node >/dev/null || [ ! -d "$repo/sdk/typescript/node_modules/@grpc/grpc-js" ]; then
    note "skipping TypeScript: node or sdk/typescript/node_modules missing (run sdk/typescript/run_tests.sh)"
    LANGS="${LANGS/typescript/}"
  else
    note "building sdk/typescript/dist from src"
    (cd "$repo/sdk/typescript" && node node_modules/typescript/bin/tsc -p tsconfig.json)
  fi
fi
if have go; then
  if ! command -v go >/dev/null || ! bash "$here/bench_go/build.sh" >&2; then
    note "skipping Go: the driver did not build (see sdk/go/run_tests.sh for the Debian packages)"
    LANGS="${LANGS/go/}"
  fi
fi

# ---------------------------------------------------------------- the server
data="$OUT/data"
rm -rf "$data"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$data" --set http_listen=127.0.0.1:0 \
  >"$OUT/server.out" 2>"$OUT/server.log" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
grpc_addr="" http_addr=""
for _ in $(seq 1 300); do
  grpc_addr="$(sed -n 's/^agentdb listening on //p' "$OUT/server.out" | head -1)"
  http_addr="$(sed -n 's/^agentdb http listening on //p' "$OUT/server.out" | head -1)"
  [ -n "$grpc_addr" ] && [ -n "$http_addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$OUT/server.log" >&2; echo "bench.sh: server exited" >&2; exit 1; }
  sleep 0.2
done
[ -n "$grpc_addr" ] || { echo "bench.sh: server did not report its address" >&2; exit 1; }
note "server pid $server_pid, gRPC $grpc_addr, HTTP $http_addr, results in $OUT"

coll=sdkbench
# Rust reference: `agentdb bench search` (tonic, raw SearchRequest, its own random
# queries). The first call loads the collection; the later ones reuse it.
rust_phase() { # K CONCURRENCY ROUND
  local k="$1" c="$2" round="$3" kind
  if [ "$c" = 1 ]; then kind=latency; else kind="qps_tasks$c"; fi
  "$BIN" --server "http://$grpc_addr" bench search --n "$N" --dim "$DIM" --index HNSW32 --metric cosine \
    --collection "$coll" --keep --no-baseline --json --k "$k" --concurrency "$c" --duration "$SECONDS_PER" \
    --queries 200 2>>"$OUT/rust.log" |
    "$PY" -c '
import json, sys
k, kind, rnd = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = json.loads(sys.stdin.read())
s = r["served"]
if r.get("load_s"):
    print(json.dumps({"load": True, "n": r["n"], "dim": r["dim"], "load_s": r["load_s"], "index_build_s": r["index_build_s"]}), file=sys.stderr)
out = {"lang": "rust", "case": f"k={k}", "k": int(k), "dim": r["dim"], "client": "raw", "round": rnd, "kind": kind}
if kind == "latency":
    out.update(n=s["requests"], p50_ms=s["p50_ms"], p99_ms=s["p99_ms"], mean_ms=None)
else:
    out.update(requests=s["requests"], seconds=r["duration_s"], qps=s["qps"])
print(json.dumps(out))' "$k" "$kind" "$round"
}
note "loading $N x $DIM vectors (HNSW32, cosine)"
rust_phase 10 1 0 >"$OUT/load.jsonl"

# The same 200 query vectors for every driver (unit length, like the data).
"$PY" - "$OUT/queries.json" "$DIM" <<'EOF'
import json, sys
import numpy as np
q = np.random.default_rng(7).standard_normal((200, int(sys.argv[2]))).astype(np.float32)
q /= np.linalg.norm(q, axis=1, keepdims=True)
json.dump(q.tolist(), open(sys.argv[1], "w"))
EOF

py_also=()
if [ -n "${PY_SDK_REF:-}" ]; then
  mkdir -p "$OUT/sdk-ref"
  git -C "$repo" archive "$PY_SDK_REF" sdk/python/agentdb | tar -x -C "$OUT/sdk-ref"
  # Both copies live in one process, so they must register the same .proto files: the
  # ref's code runs on this checkout's generated stubs (a superset when the proto grew).
  rm -rf "$OUT/sdk-ref/sdk/python/agentdb/_proto"
  cp -r "$repo/sdk/python/agentdb/_proto" "$OUT/sdk-ref/sdk/python/agentdb/_proto"
  py_also=(--sdk-also "sdk@$PY_SDK_REF=$OUT/sdk-ref/sdk/python/agentdb")
fi
common_py=("${py_also[@]}" --grpc "$grpc_addr" --http "$http_addr" --collection "$coll" --queries "$OUT/queries.json"
  --n "$LAT_N" --concurrency "$CONC" --seconds "$SECONDS_PER" --rounds "$ROUNDS")
for k in $CASES; do
  for lang in $LANGS; do
    note "k=$k: $lang"
    case "$lang" in
      python) PYTHONPATH="$repo/sdk/python${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$here/bench_py.py" "${common_py[@]}" --k "$k" >>"$results" ;;
      typescript)
        node "$here/bench_ts.mjs" --grpc "$grpc_addr" --collection "$coll" --queries "$OUT/queries.json" \
          --n "$LAT_N" --concurrency "$CONC" --seconds "$SECONDS_PER" --rounds "$ROUNDS" --k "$k" >>"$results" ;;
      go)
        "$here/bench_go/bench_go" -grpc "$grpc_addr" -collection "$coll" -queries "$OUT/queries.json" \
          -n "$LAT_N" -concurrency "$CONC" -seconds "$SECONDS_PER" -rounds "$ROUNDS" -k "$k" >>"$results" ;;
      rust)
        for r in $(seq 0 $((ROUNDS - 1))); do
          rust_phase "$k" 1 "$r" >>"$results"
          rust_phase "$k" "$CONC" "$r" >>"$results"
        done ;;
    esac
  done
done

echo "AgentDB client SDKs vs raw gRPC: $N x $DIM, HNSW32 cosine, server default ef; $ROUNDS rounds, $LAT_N sequential searches, ${SECONDS_PER}s x $CONC in flight per measurement; $(nproc) cores; $(date -u +%FT%TZ)"
"$PY" "$here/make_table.py" "$results"
