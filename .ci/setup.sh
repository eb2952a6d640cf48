#!/usr/bin/env bash
# Installs what AgentDB needs to build and test on Debian/Ubuntu, idempotently.
# Used by `make run`, `make test`, CI (.ci/run) and Dockerfile.cuda alike.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# FAISS is compiled from source (faiss-sys, static): it needs a C++ compiler, CMake,
# BLAS/LAPACK (OpenBLAS) and OpenMP (libgomp, part of gcc).
for p in build-essential cmake libopenblas-dev pkg-config; do
  have_pkg "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from rustup first" >&2; exit 1; }
