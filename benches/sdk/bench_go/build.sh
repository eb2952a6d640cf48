#!/usr/bin/env bash
# Build the Go driver offline, the way sdk/go/run_tests.sh builds the SDK: vendor/
# (git-ignored) links the Debian Go packages under /usr/share/gocode/src and this
# repository's sdk/go (the `replace` in go.mod), so no module proxy is needed.
#   benches/sdk/bench_go/build.sh      -> benches/sdk/bench_go/bench_go
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gocode="${GOCODE:-/usr/share/gocode/src}"
cd "$here"
rm -rf vendor
mkdir -p vendor
{
  awk '/^require \($/ { r = 1; next } r && /^\)/ { r = 0; next } r && NF >= 2 { print $1, $2 }' go.mod |
    while read -r p v; do
      if [ "$p" = github.com/agentdb/agentdb/sdk/go ]; then
        mkdir -p "vendor/$(dirname "$p")"
        ln -s "$here/../../../sdk/go" "vendor/$p"
        printf '# %s %s => ../../../sdk/go\n## explicit\n' "$p" "$v"
        continue
      fi
      [ -d "$gocode/$p" ] || { echo "build.sh: $gocode/$p is missing (see sdk/go/run_tests.sh for the apt packages)" >&2; exit 1; }
      mkdir -p "vendor/$(dirname "$p")"
      ln -s "$gocode/$p" "vendor/$p"
      printf '# %s %s\n## explicit\n' "$p" "$v"
    done
  echo '# github.com/agentdb/agentdb/sdk/go => ../../../sdk/go'
} > vendor/modules.txt
cache="${XDG_CACHE_HOME:-$HOME/.cache}/agentdb"
export GOCACHE="${GOCACHE:-$cache/go-cache}" GOPATH="${GOPATH:-$cache/go-path}"
export GOFLAGS="-mod=vendor" GOPROXY=off GOSUMDB=off GO111MODULE=on GOTOOLCHAIN=local
go build -o bench_go .
