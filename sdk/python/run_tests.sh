#!/usr/bin/env bash
# Install the SDK (the way users do: `pip install ./sdk/python`) into a venv and run its
# tests against real servers started from AGENTDB_BIN.
#   sdk/python/run_tests.sh [pytest args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${AGENTDB_SDK_VENV:-$HOME/.cache/agentdb/sdk-venv}"
export AGENTDB_BIN="${AGENTDB_BIN:-$HOME/.cache/agentdb/target/release/agentdb}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
# pytest to run; grpcio-tools (pinned: its output is what is checked in) to regenerate the
# stubs in tests/test_proto_sync.py. Quiet when everything is already there.
"$py" -m pip install --quiet --disable-pip-version-check "pytest>=7" "grpcio-tools==1.85.1"
# Reinstall the SDK every time, so the tests import what `pip install` produced (from a
# clean tree: setuptools leaves build/ and *.egg-info behind).
rm -rf "$here/build" "$here"/*.egg-info
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$here"
# The extras too: tests/test_langchain.py and tests/test_llama_index.py use the real packages.
"$py" -m pip install --quiet --disable-pip-version-check "$here[langchain,llamaindex]"
rm -rf "$here/build" "$here"/*.egg-info
cd "$here/tests"
# Run from tests/ so `import agentdb` resolves to the installed package, not the source tree.
exec "$py" -m pytest -p no:cacheprovider -q "$@" .
