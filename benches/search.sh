#!/usr/bin/env bash
# Served search benchmark: starts a server on a temporary data directory, runs
# `agentdb bench search` (which also runs the in-process FAISS baseline in the same
# invocation), stops the server. Extra arguments go to `agentdb bench search`.
set -euo pipefail
BIN=${AGENTDB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}/release/agentdb}
EF=${EF:-128}
EFC=${EFC:-100}
DATA=$(mktemp -d)
LOG=$(mktemp)
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
"$BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --set search.hnsw_ef_search="$EF" --set search.hnsw_ef_construction="$EFC" > "$LOG" 2> "$LOG.err" &
PID=$!
for _ in $(seq 1 600); do grep -q "listening on" "$LOG" && break; sleep 0.1; done
ADDR=$(sed -n 's/^agentdb listening on //p' "$LOG")
[ -n "$ADDR" ] || { cat "$LOG.err"; exit 1; }
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(uname -m); server efSearch=$EF efConstruction=$EFC" >&2
"$BIN" bench search --server "http://$ADDR" --hnsw-ef-search "$EF" --hnsw-ef-construction "$EFC" "$@"
