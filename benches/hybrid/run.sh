#!/usr/bin/env bash
# Hybrid retrieval benchmark (docs/PERFORMANCE.md): starts a server on a temporary data
# directory, runs `agentdb bench hybrid` (keyword, dense and hybrid search over the same
# 100k text items, upsert with and without the keyword index), then ingests the test
# photos plus printed-text cards twice, with OCR on and off (a fresh server each), and
# prints the ingest rates. Extra arguments go to `agentdb bench hybrid` (e.g. --n 20000).
set -euo pipefail
BIN=${AGENTDB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}/release/agentdb}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; rm -rf "$WORK"; }
trap cleanup EXIT
start() { # data dir, extra --set arguments
  local data=$1; shift
  "$BIN" serve --data-dir "$data" --listen 127.0.0.1:0 --set http_listen= "$@" > "$WORK/log" 2> "$WORK/err" &
  PID=$!
  for _ in $(seq 1 600); do grep -q "^agentdb listening on" "$WORK/log" && break; sleep 0.1; done
  ADDR=$(sed -n 's/^agentdb listening on //p' "$WORK/log")
  [ -n "$ADDR" ] || { cat "$WORK/err"; exit 1; }
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(uname -m)"
start "$WORK/data"
"$BIN" bench hybrid --server "http://$ADDR" "$@"
stop
# OCR on/off: the same images (photos and the eval set's text cards) into fresh servers.
python3 "$HERE/../eval/make_dataset.py" "$WORK/ds" > /dev/null
mkdir -p "$WORK/images"
cp "$WORK"/ds/media/*.png "$WORK"/ds/media/*.jpg "$WORK/images/"
for ocr in false true; do
  start "$WORK/data-ocr-$ocr" --set ingest.ocr=$ocr
  "$BIN" collection create media --multimodal --server "http://$ADDR" > /dev/null
  "$BIN" ingest media "$WORK/images" --json --server "http://$ADDR" \
    | python3 -c "import json,sys; s=json.load(sys.stdin); print(f'ingest with ingest.ocr=$ocr: {s[\"ingested\"]} images in {s[\"seconds\"]:.1f} s ({s[\"ingested\"]/s[\"seconds\"]:.2f} images/s)')"
  stop
done
