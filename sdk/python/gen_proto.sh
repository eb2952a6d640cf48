#!/usr/bin/env bash
# Regenerate the checked-in gRPC/protobuf stubs under agentdb/_proto/ from proto/proto.
#   sdk/python/gen_proto.sh [OUT_DIR]     (default: agentdb/_proto next to this script)
# Needs grpcio-tools (python3 -m grpc_tools.protoc). tests/test_proto_sync.py runs this
# into a temporary folder and fails when the checked-in files differ.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
protos="${AGENTDB_PROTO_DIR:-$here/../../proto/proto}"
out="${1:-$here/agentdb/_proto}"
python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$python" -m grpc_tools.protoc -I"$protos" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  agentdb/v1/agentdb.proto agentdb/v1/orchestration.proto
mkdir -p "$out"
for f in "$tmp"/agentdb/v1/*.py "$tmp"/agentdb/v1/*.pyi; do
  # Package-relative imports: `from agentdb.v1 import x_pb2` -> `from . import x_pb2`.
  sed -e 's/^from agentdb\.v1 import /from . import /' "$f" > "$out/$(basename "$f")"
done
[ -f "$out/__init__.py" ] || printf '"""Generated protobuf and gRPC modules (gen_proto.sh); do not edit."""\n' > "$out/__init__.py"
