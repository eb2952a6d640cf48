#!/usr/bin/env bash
# The official A2A TCK (a2aproject/a2a-tck) against a fresh AgentDB (make tck).
# The TCK is in no package registry and is not ours to copy: point A2A_TCK_DIR at a
# checkout (the numbers in docs/A2A.md are from commit 410ba92). Its Python dependencies
# go into a virtual environment outside the clone (~/.cache/agentdb/tck-venv).
# Usage: A2A_TCK_DIR=/path/to/a2a-tck bash benches/tck/run.sh [CATEGORY ...]
#   CATEGORY: mandatory (default), capabilities, quality, features; TRANSPORTS=jsonrpc|grpc;
#   TCK_AUTH=1: authentication on; TCK_SUT=reference: the a2a-sdk reference agent instead.
set -euo pipefail
: "${A2A_TCK_DIR:?set A2A_TCK_DIR to a checkout of a2aproject/a2a-tck}"
BIN=${AGENTDB_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}/release/agentdb}
VENV=${TCK_VENV:-$HOME/.cache/agentdb/tck-venv}
OUT=${TCK_OUT:-$PWD/tck-results}
CATEGORIES=("$@"); [ ${#CATEGORIES[@]} -gt 0 ] || CATEGORIES=(mandatory)
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c "import pytest, httpx, grpc, jsonschema, deepdiff, pytest_jsonreport, dotenv, aiohttp, proto, OpenSSL" 2>/dev/null \
  || "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$A2A_TCK_DIR/requirements.txt" "$A2A_TCK_DIR"
W=$(mktemp -d)
mkdir -p "$OUT"
# The TCK's push tests name webhooks on localhost, which the server refuses by default
# (no loopback or private push targets: SSRF); a loopback test run allows them.
export A2A_ALLOW_PRIVATE_PUSH_TARGETS=1
# Skip and xfail reasons in the logs (docs/A2A.md explains each).
export PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} -rsx"
# Plain-text messages start the fixture workflow benches/tck/agent.yaml as long-running
# tasks (a2a.text_workflow); the TCK keeps up to ~60 of them working at once.
# TCK_AUTH=1: authentication on (API keys); the TCK sends the bootstrap admin key as a
# bearer token, and its authentication tests run instead of being skipped.
AUTH_ARGS=() SUFFIX="" LABEL=""
if [ "${TCK_AUTH:-0}" = 1 ]; then
  AUTH_ARGS=(--set security.auth=api_key) SUFFIX="-auth" LABEL=" (authentication on)"
fi
# The system under test was just started in the background: stop it on exit, and wait
# until its stdout ($W/out.txt) has a line matching $1 (or fail with its log if it dies).
await_started() {
  PID=$!
  trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$W"' EXIT
  until grep -q "$1" "$W/out.txt" 2>/dev/null; do
    kill -0 $PID 2>/dev/null || { cat "$W/server.log" >&2; exit 1; }
    sleep 0.1
  done
}
if [ "${TCK_SUT:-agentdb}" = reference ]; then
  # The comparison: the TCK's own agent on the registry's a2a-sdk (reference_agent.py).
  SUFFIX="-reference$SUFFIX" LABEL=" (a2a-sdk reference)$LABEL"
  python3 "$(dirname "$0")/reference_agent.py" >"$W/out.txt" 2>"$W/server.log" &
  await_started "^READY"
  SUT_URL="http://localhost:$(awk '{print $2}' "$W/out.txt")/"
else
  "$BIN" serve --data-dir "$W/data" --listen 127.0.0.1:0 --set http_listen=127.0.0.1:0 "${AUTH_ARGS[@]}" \
    --set a2a.text_workflow=tck-agent --set workflows.max_concurrent_runs=256 >"$W/out.txt" 2>"$W/server.log" &
  await_started "^agentdb listening"
  # The TCK addresses the server as localhost (the card's URLs follow the Host the client
  # used; its card-security test flags 127.0.0.1 as an internal address but allows localhost).
  HTTP=$(sed -n 's/^agentdb http listening on //p' "$W/out.txt" | sed 's/^127\.0\.0\.1:/localhost:/')
  GRPC=$(sed -n 's/^agentdb listening on //p' "$W/out.txt")
  if [ "${TCK_AUTH:-0}" = 1 ]; then
    export A2A_AUTH_TYPE=bearer A2A_AUTH_TOKEN
    A2A_AUTH_TOKEN=$(cat "$W/data/security/bootstrap-admin.key")
    export AGENTDB_API_KEY=$A2A_AUTH_TOKEN
  fi
  "$BIN" workflow apply --server "http://$GRPC" "$(dirname "$0")/agent.yaml" >/dev/null
  SUT_URL="http://$HTTP/a2a"
fi
echo "tck: system under test at $SUT_URL"
cd "$A2A_TCK_DIR"
for c in "${CATEGORIES[@]}"; do
  for t in ${TRANSPORTS:-jsonrpc grpc}; do
    echo "tck: category $c over $t"
    # The official runner (its own markers and options); its exit code says whether the
    # category passed, which is a result here, not a failure of this script.
    "$VENV/bin/python" run_tck.py --sut-url "$SUT_URL" --category "$c" --transports "$t" \
      >"$OUT/$c-$t$SUFFIX.log" 2>&1 || true
    log="$OUT/$c-$t$SUFFIX.log"
    summary=$(grep -E "(passed|failed|error).* in [0-9.]+s" "$log" | tail -1 || true)
    echo "tck: $c over $t$LABEL: ${summary:-no pytest summary, see $log}"
  done
done
