#!/usr/bin/env bash
# Retrieval-quality evaluation: builds the labelled dataset (real photographs, short
# texts, speech synthesised with espeak-ng), starts a server on a temporary data
# directory, runs `agentdb eval` against it and stops it. Leading arguments
# --descriptive-names (name the media files by what they show) and --distractors (add 30
# unrelated multi-part sources) go to make_dataset.py; --unseen builds the held-out set of
# make_unseen.py instead (Tux Paint's media, `bash .ci/models.sh --unseen`); the others go
# to `agentdb eval` (e.g. --modes dense,keyword,hybrid --metadata both --verbose --json).
set -euo pipefail
BIN=${AGENTDB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}/release/agentdb}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
DATASET_ARGS=()
MAKE=make_dataset.py
while [ "${1:-}" = "--descriptive-names" ] || [ "${1:-}" = "--distractors" ] || [ "${1:-}" = "--unseen" ]; do
  if [ "$1" = "--unseen" ]; then MAKE=make_unseen.py; else DATASET_ARGS+=("$1"); fi
  shift
done
python3 "$HERE/$MAKE" "$WORK/dataset" "${DATASET_ARGS[@]}" >&2
# Created before the server starts: the background job opens it only after the fork.
: > "$WORK/log"
"$BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 --set http_listen=127.0.0.1:0 > "$WORK/log" 2> "$WORK/err" &
PID=$!
for _ in $(seq 1 600); do grep -q "^agentdb listening on" "$WORK/log" && break; sleep 0.1; done
ADDR=$(sed -n 's/^agentdb listening on //p' "$WORK/log")
[ -n "$ADDR" ] || { cat "$WORK/err"; exit 1; }
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(uname -m)" >&2
"$BIN" eval "$WORK/dataset" --server "http://$ADDR" "$@"
