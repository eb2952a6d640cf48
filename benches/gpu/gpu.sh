#!/usr/bin/env bash
# GPU checks and benchmarks in two steps, because GPU machines have no Rust toolchain:
#
#   bash benches/gpu/gpu.sh build   # here: builds the cuda binary and the parity test into gpu-bundle/
#   bash benches/gpu/gpu.sh run     # on the GPU machine (device tool, carry gpu-bundle):
#                                   # parity test, device selection, exact top-k benchmark
#
# Results are printed as JSON lines; record them in docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=gpu-bundle
case "${1:-}" in
  build)
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}
    make build FEATURES=cuda
    rm -rf "$OUT" && mkdir -p "$OUT"
    cp "$CARGO_TARGET_DIR/release/agentdb" "$OUT/agentdb"
    exe=$(cargo test --release -p agentdb-kernels --features cuda --test parity --no-run --message-format=json 2>/dev/null \
      | python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "parity":
        print(m["executable"])')
    cp "$exe" "$OUT/kernels-parity"
    echo "built $OUT/: agentdb (cuda) and kernels-parity"
    ;;
  run)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$OUT/kernels-parity" --nocapture
    DATA=$(mktemp -d)
    "$OUT/agentdb" serve --data-dir "$DATA" --listen 127.0.0.1:0 --set http_listen= --device auto > "$DATA/log" 2>&1 &
    PID=$!
    for _ in $(seq 1 300); do grep -q "^agentdb listening on" "$DATA/log" && break; sleep 0.1; done
    grep -o '"message":"device[^"]*"[^}]*' "$DATA/log" || grep -i device "$DATA/log" | head -3
    kill $PID; wait $PID 2>/dev/null || true
    "$OUT/agentdb" bench gpu --n 1000000 --dim 768 --batches 1,64,1024 --json
    ;;
  *)
    echo "usage: $0 build|run" >&2; exit 2 ;;
esac
