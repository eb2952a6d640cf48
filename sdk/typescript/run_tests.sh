#!/usr/bin/env bash
# Install (from the lockfile), build, and test the TypeScript SDK against real servers
# started from AGENTDB_BIN (default ~/.cache/agentdb/target/release/agentdb).
#   sdk/typescript/run_tests.sh [test files...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export AGENTDB_BIN="${AGENTDB_BIN:-$HOME/.cache/agentdb/target/release/agentdb}"
# npm ci only when the lockfile changed since the last install (it is idempotent but
# removes and reinstalls node_modules; the npm cache makes it work offline afterwards).
stamp=node_modules/.agentdb-lock-sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --prefer-offline --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
rm -rf dist
node node_modules/typescript/bin/tsc -p tsconfig.json
if [ "$#" -eq 0 ]; then
  set -- test/*.test.mjs
fi
exec node --test --test-concurrency="${AGENTDB_TEST_CONCURRENCY:-2}" --test-timeout=300000 "$@"
