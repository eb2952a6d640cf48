#!/usr/bin/env bash
# Text embedding throughput: AgentDB's MiniLM (`agentdb bench embed`: Candle, ONNX Runtime, int8) against
# Python sentence-transformers (PyTorch) on the same model folder, sentences, batch sizes
# and thread count, in one invocation. Not part of `make test` (PyTorch is a 900 MB wheel
# plus ~3 GB of CUDA libraries from PyPI); the venv is made once in ~/.cache/agentdb.
set -euo pipefail
BIN=${AGENTDB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}/release/agentdb}
MODEL=${AGENTDB_MODELS_DIR:-$HOME/.cache/agentdb/models}/all-minilm-l6-v2
VENV=${ST_VENV:-$HOME/.cache/agentdb/st-venv}
N=${N:-512}
BATCHES=${BATCHES:-1,8,32,64}
THREADS=$(nproc)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import sentence_transformers" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "torch==2.9.1" "sentence-transformers==5.1.2" "transformers==4.57.1" \
    "huggingface-hub<1.0" "tokenizers<0.23"
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-3}
# Interleaved rounds (ST, then each AgentDB configuration, ROUNDS times) so that machine
# noise hits every row alike; each cell is the median over the rounds.
ST_RUNS=(); CANDLE=(); ONNX=(); INT8=()
for _ in $(seq "$ROUNDS"); do
  ST_RUNS+=("$("$VENV/bin/python" "$HERE/st_baseline.py" "$MODEL" "$N" "$THREADS" "$BATCHES")")
  CANDLE+=("$("$BIN" bench embed --texts "$N" --batch-sizes "$BATCHES" --callers 1 --backend candle --json)")
  ONNX+=("$("$BIN" bench embed --texts "$N" --batch-sizes "$BATCHES" --callers 1 --backend onnx --json)")
  INT8+=("$("$BIN" bench embed --texts "$N" --batch-sizes "$BATCHES" --callers 1 --model "$MODEL-int8" --json)")
done
python3 - "$(uptime)" "$(printf '%s\n' "${ST_RUNS[@]}")" "$(printf '%s\n' "${CANDLE[@]}")" \
  "$(printf '%s\n' "${ONNX[@]}")" "$(printf '%s\n' "${INT8[@]}")" <<'PYEOF'
import json, statistics, sys
load = sys.argv[1]
runs = [[json.loads(l) for l in a.splitlines() if l.strip()] for a in sys.argv[2:6]]
st, candle, onnx, int8 = runs
def med(rs, key, bs):
    return statistics.median(next(x["texts_per_s"] for x in r[key] if x["batch"] == bs) for r in rs)
batches = [r["batch"] for r in st[0]["rows"]]
print(f"all-MiniLM-L6-v2, {st[0]['threads']} threads, sentence-transformers (torch {st[0]['torch']}) vs AgentDB, "
      f"median of {len(st)} interleaved rounds; {load.strip()}")
print(f"{'batch':>6} {'sentence-transformers/s':>24} {'candle/s':>9} {'ratio':>6} {'onnxruntime/s':>14} {'ratio':>6} "
      f"{'int8/s':>8} {'ratio':>6}")
for bs in batches:
    s = med(st, "rows", bs)
    c, o, q = med(candle, "direct", bs), med(onnx, "direct", bs), med(int8, "direct", bs)
    print(f"{bs:>6} {s:>24.1f} {c:>9.1f} {c / s:>6.2f} {o:>14.1f} {o / s:>6.2f} {q:>8.1f} {q / s:>6.2f}")
PYEOF
