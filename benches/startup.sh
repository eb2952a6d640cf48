#!/usr/bin/env bash
# Start-up cost against collection size (docs/OPERATIONS.md, "What a start costs"):
# load N items (64-d vectors, a 12-word `text` payload) into one collection with the
# default HNSW32 and keyword indexes, flush and optimise, stop the server, then time two
# restarts from `agentdb serve` to its `agentdb listening` line. Usage:
#   bash benches/startup.sh [N ...]        (default: 50000 200000)
set -euo pipefail
BIN=${AGENTDB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}/release/agentdb}
PORT=${PORT:-7799}
W=$(mktemp -d)
trap 'kill $(cat "$W/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$W"' EXIT
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(50000 200000)
MAX=$(printf '%s\n' "${SIZES[@]}" | sort -n | tail -1)
python3 - "$W/items.jsonl" "$MAX" <<'PY'
import json, random, sys
random.seed(1)
words = "the quick brown fox jumps over a lazy dog while agents search memory for invoices receipts photos and notes".split()
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        v = [round(random.uniform(-1, 1), 4) for _ in range(64)]
        f.write(json.dumps({"id": f"i{i}", "vector": v, "payload": {"text": " ".join(random.choices(words, k=12)), "n": i}}) + "\n")
PY
start() { # start DATA_DIR: prints the seconds until the server listens
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" serve --data-dir "$1" --listen 127.0.0.1:$PORT --set http_listen= >"$W/out.txt" 2>"$W/err.txt" &
  echo $! >"$W/pid"
  until grep -q "agentdb listening" "$W/out.txt" 2>/dev/null; do sleep 0.05; done
  t1=$(date +%s.%N)
  python3 -c "print(round($t1 - $t0, 2))"
}
stop() { kill -TERM "$(cat "$W/pid")"; while kill -0 "$(cat "$W/pid")" 2>/dev/null; do sleep 0.1; done; }
export AGENTDB_URL=http://127.0.0.1:$PORT
for n in "${SIZES[@]}"; do
  D=$W/data-$n
  echo "items=$n empty start: $(start "$D") s"
  "$BIN" collection create docs --dim 64 >/dev/null
  head -n "$n" "$W/items.jsonl" | "$BIN" upsert docs - --batch 1000 >/dev/null
  "$BIN" collection flush docs --optimize >/dev/null
  stop
  for r in 1 2; do
    echo "items=$n restart $r: $(start "$D") s; $(grep -o '"keyword index built"[^}]*"ms":[0-9]*' "$W/err.txt" | grep -o '"ms":[0-9]*' || true)"
    stop
  done
  echo "items=$n on disk: $(du -sh "$D" | cut -f1)"
done
