#!/usr/bin/env bash
# GPU checks and benchmarks in two steps, because GPU machines need no Rust toolchain:
#
#   bash benches/gpu/gpu.sh build   # here: a lean `cuda` server binary (no FFmpeg/Tesseract),
#                                   # the kernels' parity tests and the shared libraries
#                                   # they need, into gpu-bundle/ (~20 MB, xz)
#   bash benches/gpu/gpu.sh run     # on the GPU machine (carry gpu-bundle): parity tests,
#                                   # PyTorch baseline, exact top-k benchmark, served search
#                                   # CPU vs GPU; JSON lines into $OUT (or ./gpu-results)
#   bash benches/gpu/gpu.sh build-embed   # here: lean binary, the GPU text-encoder parity test
#                                         # and all-MiniLM-L6-v2 stored as fp16 (benches/gpu/model_f16.py)
#                                         # into gpu-bundle-embed/ (~60 MB: the transfer limit is 64 MiB)
#   bash benches/gpu/gpu.sh build-parity / run-parity   # only the two encoder parity tests
#   bash benches/gpu/gpu.sh build-image / run-image     # EfficientNet parity + agentdb bench gpu-image
#   bash benches/gpu/gpu.sh run-embed     # there (carry gpu-bundle-embed): parity on the GPU, CPU vs
#                                         # GPU embedding throughput and cosine per GEMM mode, and
#                                         # sentence-transformers on the same GPU
#
# Record the numbers in docs/PERFORMANCE.md.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=gpu-bundle
# The lean builds overwrite $CARGO_TARGET_DIR/release/agentdb, which the e2e tests run:
# rebuild the default binary afterwards so the shared target dir stays as `make` left it.
restore_default_bin() { cargo build --release -p agentdb-server >/dev/null 2>&1 || true; }
# Bundle pieces, shared by the build modes.
target() { export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/agentdb/target}; }
# lean_server DIR: the `cuda` server without FFmpeg/Tesseract into DIR/stage/agentdb.
lean_server() {
  cargo build --release -p agentdb-server --no-default-features --features cuda
  cp "$CARGO_TARGET_DIR/release/agentdb" "$1/stage/agentdb"
}
# test_exe DEST CARGO-TEST-ARGS...: build one test target and copy its executable to DEST.
test_exe() {
  local dest=$1; shift
  local exe
  exe=$(cargo test --release "$@" --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import sys, json
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])' | tail -1)
  cp "$exe" "$dest"
}
# ship_libs DIR EXE...: the executables' non-glibc shared libraries (BLAS for FAISS,
# libgomp, libstdc++...) into DIR/stage/lib.
ship_libs() {
  local dir=$1; shift
  for f in "$@"; do ldd "$f"; done | awk '/=> \//{print $3}' | sort -u \
    | grep -v -E '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' | xargs -r -I{} cp -L {} "$dir/stage/lib/"
}
# pack DIR: DIR/stage into DIR/bundle.tar.xz.
pack() {
  tar -C "$1/stage" -cf - . | xz -T2 -6 > "$1/bundle.tar.xz"
  rm -rf "$1/stage"
  ls -la "$1"
  restore_default_bin
}
# cuda_libs: cuBLAS and NVRTC folders on a GPU machine (the toolkit's or the Python wheels').
cuda_libs() {
  (ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib 2>/dev/null;
   find /usr/local /opt /usr/lib -xdev \( -name 'libcublas.so.1*' -o -name 'libnvrtc.so.1*' \) -printf '%h\n' 2>/dev/null) | sort -u | paste -sd:
}
case "${1:-}" in
  build)
    set -e; target
    rm -rf "$B" && mkdir -p "$B/stage/lib"
    lean_server "$B"
    for t in parity preprocess; do
      test_exe "$B/stage/kernels-$t" -p agentdb-kernels --features cuda --test $t
    done
    ship_libs "$B" "$B"/stage/agentdb "$B"/stage/kernels-*
    pack "$B"
    ;;
  build-embed)
    set -e; target
    E=gpu-bundle-embed
    rm -rf "$E" && mkdir -p "$E/stage/lib" "$E/stage/models"
    lean_server "$E"
    test_exe "$E/stage/models-gpu-text" -p agentdb-models --no-default-features --features cuda --test gpu_text
    strip "$E/stage/agentdb" "$E/stage/models-gpu-text"
    ship_libs "$E" "$E"/stage/agentdb "$E"/stage/models-gpu-text
    python3 benches/gpu/model_f16.py "${AGENTDB_MODELS_DIR:-$HOME/.cache/agentdb/models}/all-minilm-l6-v2" "$E/stage/models/all-minilm-l6-v2"
    rm -f "$E"/stage/models/all-minilm-l6-v2/{README.md,data_config.json}
    pack "$E"
    ;;
  build-image)
    set -e; target
    I=gpu-bundle-image
    rm -rf "$I" && mkdir -p "$I/stage/lib" "$I/stage/models" "$I/stage/testdata"
    lean_server "$I"
    test_exe "$I/stage/models-gpu-image" -p agentdb-models --no-default-features --features cuda --test gpu_image
    strip "$I/stage/agentdb" "$I/stage/models-gpu-image"
    ship_libs "$I" "$I"/stage/agentdb "$I"/stage/models-gpu-image
    M=${AGENTDB_MODELS_DIR:-$HOME/.cache/agentdb/models}
    mkdir -p "$I/stage/models/efficientnet-lite0"
    cp "$M"/efficientnet-lite0/{agentdb-model.json,imagenet-labels.txt,model.safetensors} "$I/stage/models/efficientnet-lite0/"
    cp -r "${AGENTDB_TESTDATA:-$HOME/.cache/agentdb/testdata}/photos" "$I/stage/testdata/"
    pack "$I"
    ;;
  run-image)
    R=${OUT:-gpu-results}
    mkdir -p "$R" /tmp/gi && tar -C /tmp/gi -xJf gpu-bundle-image/bundle.tar.xz
    G=/tmp/gi
    cudalibs=$(cuda_libs)
    export GPU_LD="$G/lib:$cudalibs" AGENTDB_MODELS_DIR=$G/models AGENTDB_TESTDATA=$G/testdata
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$R/results.txt"
    echo "== GPU image encoder parity"
    LD_LIBRARY_PATH="$GPU_LD" timeout 120 $G/models-gpu-image --nocapture 2>&1 | tail -40 | tee -a "$R/results.txt"
    echo "== agentdb bench gpu-image: synthetic scenes, then photographs"
    LD_LIBRARY_PATH="$GPU_LD" timeout 150 $G/agentdb bench gpu-image --images 512 --batch-sizes 1,32,128 --math fp32,tf32,fp16 --json | tee -a "$R/results.txt"
    LD_LIBRARY_PATH="$GPU_LD" timeout 120 $G/agentdb bench gpu-image --images 256 --batch-sizes 32 --math tf32 \
      --photos $G/testdata/photos --json | tee -a "$R/results.txt"
    ;;
  build-parity)
    # Only the GPU encoder parity tests, with both models stored as fp16 (~55 MB).
    set -e; target
    P=gpu-bundle-parity
    rm -rf "$P" && mkdir -p "$P/stage/lib" "$P/stage/models/efficientnet-lite0" "$P/stage/testdata/photos"
    for t in gpu_text gpu_image; do
      test_exe "$P/stage/$t" -p agentdb-models --no-default-features --features cuda --test $t
    done
    strip "$P"/stage/gpu_*
    ship_libs "$P" "$P"/stage/gpu_*
    M=${AGENTDB_MODELS_DIR:-$HOME/.cache/agentdb/models}
    python3 benches/gpu/model_f16.py "$M/all-minilm-l6-v2" "$P/stage/models/all-minilm-l6-v2"
    rm -f "$P"/stage/models/all-minilm-l6-v2/{README.md,data_config.json}
    python3 benches/gpu/model_f16.py "$M/efficientnet-lite0" "$P/stage/models/efficientnet-lite0"
    for f in chelsea.png coffee.png astronaut.png motorcycle_left.png horse.png; do
      cp "${AGENTDB_TESTDATA:-$HOME/.cache/agentdb/testdata}/photos/$f" "$P/stage/testdata/photos/"
    done
    pack "$P"
    ;;
  run-parity)
    mkdir -p /tmp/gp && tar -C /tmp/gp -xJf gpu-bundle-parity/bundle.tar.xz
    cl=$(cuda_libs)
    export LD_LIBRARY_PATH=/tmp/gp/lib:$cl AGENTDB_MODELS_DIR=/tmp/gp/models AGENTDB_TESTDATA=/tmp/gp/testdata
    /tmp/gp/gpu_text --nocapture 2>&1 | tail -20
    /tmp/gp/gpu_image --nocapture 2>&1 | tail -30
    ;;
  run-embed)
    R=${OUT:-gpu-results}
    mkdir -p "$R" /tmp/ge && tar -C /tmp/ge -xJf gpu-bundle-embed/bundle.tar.xz
    G=/tmp/ge
    cudalibs=$(cuda_libs)
    export GPU_LD="$G/lib:$cudalibs" AGENTDB_MODELS_DIR=$G/models
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$R/results.txt"
    echo "== GPU text encoder parity"
    LD_LIBRARY_PATH="$GPU_LD" timeout 120 $G/models-gpu-text --nocapture 2>&1 | tail -20 | tee -a "$R/results.txt"
    echo "== agentdb bench embed: CPU vs GPU"
    LD_LIBRARY_PATH="$GPU_LD" timeout 240 $G/agentdb bench embed --model $G/models/all-minilm-l6-v2 --device cuda:0 \
      --texts 4096 --batch-sizes 1,32,256 --math fp32,tf32,fp16 --json | tee -a "$R/results.txt"
    echo "== sentence-transformers on the same GPU"
    timeout 180 python3 benches/gpu/st_baseline.py $G/models/all-minilm-l6-v2 --texts 4096 --batches 1,32,256 | tee -a "$R/results.txt"
    echo "== served: text encoder on the GPU"
    D=$(mktemp -d)
    LD_LIBRARY_PATH="$GPU_LD" $G/agentdb serve --data-dir "$D" --listen 127.0.0.1:7791 --set http_listen= --device cuda:0 > "$R/serve-embed.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 600); do grep -q "agentdb listening on" "$R/serve-embed.log" && break; kill -0 $PID 2>/dev/null || break; sleep 0.1; done
    grep -m3 'text encoder\|GPU' "$R/serve-embed.log" | cut -c1-300 | tee -a "$R/results.txt"
    kill $PID; wait $PID 2>/dev/null
    ;;
  run)
    R=${OUT:-gpu-results}
    mkdir -p "$R" /tmp/gb && tar -C /tmp/gb -xJf "$B/bundle.tar.xz"
    G=/tmp/gb
    cudalibs=$(cuda_libs)
    export GPU_LD="$G/lib:$cudalibs"
    run() { LD_LIBRARY_PATH="$GPU_LD" "$@"; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$R/results.txt"
    # PARTS picks what runs (default: all); CONC the served-search concurrencies.
    want() { [[ " ${PARTS:-parity torch kernel served budget} " == *" $1 "* ]]; }
    if want parity; then
    echo "== parity"; run $G/kernels-parity --nocapture 2>&1 | tail -8; run $G/kernels-preprocess --nocapture 2>&1 | tail -8
    fi
    if want torch; then
    echo "== torch baseline"
    timeout 240 python3 benches/gpu/torch_baseline.py --n 1000000 --dim 768 --batches 1,64,1024 --seconds 1.5 | tee "$R/torch.json" | tee -a "$R/results.txt"
    fi
    bw=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["copy_gbs"]))' "$R/torch.json" 2>/dev/null || echo 4000)
    if want kernel; then
    echo "== agentdb bench gpu (roofline $bw GB/s)"
    timeout 300 env LD_LIBRARY_PATH="$GPU_LD" $G/agentdb bench gpu --n 1000000 --dim 768 --batches 1,64,1024 \
      --seconds 1.5 --bandwidth-gbs "$bw" --json | tee -a "$R/results.txt"
    fi
    echo "== served search, CPU then GPU, same data directory"
    D=$(mktemp -d)
    serve() {
      AGENTDB_MODELS_DIR=/nonexistent LD_LIBRARY_PATH="$GPU_LD" $G/agentdb serve --data-dir "$D" --listen 127.0.0.1:7791 \
        --set http_listen=127.0.0.1:7792 --device "$@" > "$R/serve-${1//:/}.log" 2>&1 &
      PID=$!
      for _ in $(seq 1 600); do grep -q "agentdb listening on" "$R/serve-${1//:/}.log" && break; kill -0 $PID 2>/dev/null || break; sleep 0.1; done
      grep -i -m3 'device\|GPU' "$R/serve-${1//:/}.log" | cut -c1-300
    }
    bench() {
      timeout 200 env LD_LIBRARY_PATH="$GPU_LD" $G/agentdb --server http://127.0.0.1:7791 bench search --n "${N:-200000}" --dim 768 \
        --index Flat --metric ip --k 10 --queries 200 --duration "${DUR:-5}" --collection gpubench --keep "$@" --json
    }
    if want served; then
    serve cpu
    for c in ${CONC:-1 8}; do bench --concurrency $c | tee -a "$R/results.txt"; done
    kill $PID; wait $PID 2>/dev/null
    serve cuda:0
    for c in ${CONC:-1 8}; do bench --concurrency $c --no-baseline | tee -a "$R/results.txt"; done
    curl -s http://127.0.0.1:7792/metrics | grep agentdb_gpu | tee -a "$R/results.txt"
    grep -m5 'GPU' "$R/serve-cuda0.log" | cut -c1-300
    kill $PID; wait $PID 2>/dev/null
    fi
    if want budget; then
    echo "== served search on a GPU memory budget smaller than the collection (eviction / CPU fallback)"
    mv "$R/serve-cuda0.log" "$R/serve-cuda0-full.log"
    serve cuda:0 --set gpu.memory_fraction=0.0005
    DUR=2 bench --concurrency 1 --no-baseline | tee -a "$R/results.txt"
    grep -m4 'budget\|evicted' "$R/serve-cuda0.log" | cut -c1-300
    kill $PID; wait $PID 2>/dev/null
    fi
    ;;
  *)
    echo "usage: $0 build|run" >&2; exit 2 ;;
esac
