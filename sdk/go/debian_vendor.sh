#!/usr/bin/env bash
# Build offline against Debian's Go packages: make vendor/ (git-ignored) point at the
# module sources Debian installs under /usr/share/gocode/src, with a vendor/modules.txt
# that matches go.mod, so that `go build -mod=vendor` / `go test -mod=vendor` need no
# module proxy. Idempotent; re-run after changing go.mod.
#   sdk/go/debian_vendor.sh            (GOCODE=/usr/share/gocode/src by default)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gocode="${GOCODE:-/usr/share/gocode/src}"
vendor="$here/vendor"
mods=$(awk '
  /^require \($/ { inreq = 1; next }
  inreq && /^\)/ { inreq = 0; next }
  inreq && NF >= 2 { print $1, $2; next }
  /^require [^(]/ { print $2, $3 }' "$here/go.mod")
rm -rf "$vendor"
mkdir -p "$vendor"
{
  while read -r path version; do
    [ -n "$path" ] || continue
    if [ ! -d "$gocode/$path" ]; then
      echo "debian_vendor.sh: $gocode/$path is missing (see README.md for the apt packages)" >&2
      exit 1
    fi
    mkdir -p "$vendor/$(dirname "$path")"
    ln -s "$gocode/$path" "$vendor/$path"
    printf '# %s %s\n## explicit\n' "$path" "$version"
  done <<<"$mods"
} > "$vendor/modules.txt.tmp"
mv "$vendor/modules.txt.tmp" "$vendor/modules.txt"
