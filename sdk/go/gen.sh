#!/usr/bin/env bash
# Regenerate the checked-in Go protobuf/gRPC code under agentdbpb/ from proto/proto.
#   sdk/go/gen.sh [OUT_DIR]        (default: agentdbpb/ next to this script)
# Needs protoc, protoc-gen-go and protoc-gen-go-grpc on PATH (Debian bookworm:
# apt-get install protobuf-compiler protoc-gen-go protoc-gen-go-grpc). The .proto files
# have no go_package option; it is given here with --go_opt/--go-grpc_opt M flags.
# gen_test.go runs this into a temporary folder and fails when the checked-in files differ.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
protos="${AGENTDB_PROTO_DIR:-$here/../../proto/proto}"
out="${1:-$here/agentdbpb}"
pkg="github.com/agentdb/agentdb/sdk/go/agentdbpb;agentdbpb"
files=(agentdb/v1/agentdb.proto agentdb/v1/orchestration.proto)
m=()
for f in "${files[@]}"; do m+=("--go_opt=M$f=$pkg" "--go-grpc_opt=M$f=$pkg"); done
mkdir -p "$out"
protoc -I"$protos" \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  "${m[@]}" "${files[@]}"
# paths=source_relative writes agentdb/v1/*.go; flatten into one package directory.
mv "$out"/agentdb/v1/*.go "$out"/
rm -rf "$out"/agentdb
