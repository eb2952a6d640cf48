#!/usr/bin/env bash
# Build and test the Go SDK offline against Debian's Go packages (no module proxy):
#   sdk/go/run_tests.sh [go test flags...]     e.g. -run TestVector -v
# Installs nothing. Needs (Debian bookworm):
#   apt-get install -y golang-go golang-google-grpc-dev golang-google-protobuf-dev \
#     golang-github-golang-protobuf-1-5-dev golang-google-genproto-dev \
#     protobuf-compiler protoc-gen-go protoc-gen-go-grpc
# The tests start the real server: AGENTDB_BIN (default
# ~/.cache/agentdb/target/release/agentdb). Exit status: the tests'.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

missing=()
command -v go >/dev/null || missing+=(golang-go)
for d in google.golang.org/grpc:golang-google-grpc-dev google.golang.org/protobuf:golang-google-protobuf-dev \
  google.golang.org/genproto:golang-google-genproto-dev golang.org/x/net:golang-golang-x-net-dev; do
  [ -d "/usr/share/gocode/src/${d%%:*}" ] || missing+=("${d#*:}")
done
# grpc 1.33.3 requires github.com/golang/protobuf >= 1.4 (built on google.golang.org/protobuf);
# apt may satisfy golang-google-grpc-dev with the 1.3 package instead.
grep -qs 'google.golang.org/protobuf' /usr/share/gocode/src/github.com/golang/protobuf/go.mod \
  || missing+=(golang-github-golang-protobuf-1-5-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "run_tests.sh: missing Debian packages: ${missing[*]}" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  exit 2
fi
for tool in protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || echo "run_tests.sh: $tool not found; the generated-code check is skipped (apt-get install -y protobuf-compiler protoc-gen-go protoc-gen-go-grpc)" >&2
done

cache="${XDG_CACHE_HOME:-$HOME/.cache}/agentdb"
export GOCACHE="${GOCACHE:-$cache/go-cache}"
export GOPATH="${GOPATH:-$cache/go-path}"
export GOFLAGS="-mod=vendor" GOPROXY=off GOSUMDB=off GO111MODULE=on GOTOOLCHAIN=local
export AGENTDB_BIN="${AGENTDB_BIN:-$HOME/.cache/agentdb/target/release/agentdb}"
mkdir -p "$GOCACHE" "$GOPATH"

bash "$here/debian_vendor.sh"
unformatted="$(gofmt -l $(git ls-files -co --exclude-standard -- '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*'))"
if [ -n "$unformatted" ]; then
  echo "run_tests.sh: not gofmt-formatted: $unformatted" >&2
  exit 1
fi
go build ./...
go vet ./...
exec go test -count=1 -timeout 300s "$@" ./...
