#!/usr/bin/env bash
# Text embedding throughput: AgentDB's Candle MiniLM (`agentdb bench embed`) against
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
PY=$("$VENV/bin/python" "$HERE/st_baseline.py" "$MODEL" "$N" "$THREADS" "$BATCHES")
RS=$("$BIN" bench embed --texts "$N" --batch-sizes "$BATCHES" --json)
python3 - "$PY" "$RS" <<'PYEOF'
import json, sys
py, rs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"all-MiniLM-L6-v2, {py['threads']} threads, torch {py['torch']} vs AgentDB (Candle)")
print(f"{'batch':>6} {'sentence-transformers/s':>24} {'agentdb/s':>10} {'ratio':>6}")
for p, r in zip(py["rows"], rs["direct"]):
    print(f"{p['batch']:>6} {p['texts_per_s']:>24.1f} {r['texts_per_s']:>10.1f} {r['texts_per_s'] / p['texts_per_s']:>6.2f}")
PYEOF
