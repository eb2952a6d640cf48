# AgentDB: `make run` and `make test` are the two commands in the README.
# Build output lives outside the clone so repeated runs (and CI) reuse it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/agentdb/target
CARGO ?= cargo
BIN := $(CARGO_TARGET_DIR)/release/agentdb
DATA_DIR ?= ./agentdb-data
LISTEN ?= 127.0.0.1:7720

.PHONY: setup models build run test lint bench bench-search bench-edge eval eval-unseen tck fmt clean-data

setup:
	@bash .ci/setup.sh
	@bash .ci/models.sh

# Only the model packages (pinned versions and checksums) into ~/.cache/agentdb/models.
models:
	@bash .ci/models.sh

# FEATURES=cuda builds the GPU kernels in (they load CUDA at run time; no toolkit needed).
build: setup
	$(CARGO) build --release --workspace --bins $(if $(FEATURES),--features agentdb-server/$(FEATURES))

run: build
	$(BIN) serve --data-dir $(DATA_DIR) --listen $(LISTEN)

# One profile (release) for the binary and the tests, so FAISS is compiled once.
test: build
	@bash .ci/models.sh --testdata
	# Formatting and clippy (-D warnings) first: a lint failure fails the run.
	$(MAKE) lint
	$(CARGO) test --release --workspace --all-targets --no-fail-fast
	$(CARGO) test --release --workspace --doc
	# The GPU build compiles everywhere; its kernels compile to PTX with NVRTC and match
	# their CPU twins (on a GPU too, where there is one).
	LD_LIBRARY_PATH=$(HOME)/.cache/agentdb/cuda/lib:$$LD_LIBRARY_PATH $(CARGO) test --release -p agentdb-kernels --features cuda
	LD_LIBRARY_PATH=$(HOME)/.cache/agentdb/cuda/lib:$$LD_LIBRARY_PATH $(CARGO) test --release -p agentdb-models --features cuda --test gpu_text --test gpu_image
	$(CARGO) check --release -p agentdb-server --features cuda
	# The lean GPU server (no FFmpeg, no Tesseract) that benches/gpu/gpu.sh carries.
	$(CARGO) check --release -p agentdb-server --no-default-features --features cuda

# Formatting, clippy -D warnings, and no import cycles between the modules of any crate
# (.ci/modcycles.py: at every level of each crate's module tree the siblings form a DAG).
lint:
	python3 .ci/modcycles.py
	python3 .ci/modcycles.py --self-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Criterion micro-benchmarks (index build and search).
bench: setup
	$(CARGO) bench -p agentdb-benches

# Served search benchmark against a fresh temporary server (see docs/PERFORMANCE.md).
bench-search: build
	bash benches/search.sh

# Edge-sync numbers (docs/PERFORMANCE.md, docs/EDGE.md): sync lag after a reconnect for
# 10k changed items, bytes per item by vector encoding, and the idle memory and size of a
# lean edge binary (no FFmpeg, no Tesseract), built into its own folder.
LEAN_TARGET ?= $(HOME)/.cache/agentdb/target-lean
bench-edge: build
	$(CARGO) build --release -p agentdb-server --no-default-features --target-dir $(LEAN_TARGET)
	EDGE_BENCH_BIN=$(LEAN_TARGET)/release/agentdb $(CARGO) test --release --workspace --test bench_edge -- --ignored --nocapture

# Retrieval quality (success@1/@5, MRR per query kind and per half) on a mixed folder:
# photos, texts, speech, cards, videos, sounds; with and without 30 distractors.
eval: build
	@bash .ci/models.sh --testdata
	bash benches/eval/run.sh --modes dense,keyword,hybrid
	bash benches/eval/run.sh --distractors --modes dense,keyword,hybrid
	bash benches/eval/run.sh --descriptive-names --modes dense,keyword,hybrid --metadata both

# The held-out evaluation (Tux Paint's pictures and sounds, new texts, speech, cards and
# videos; queries labelled easy / hard): nothing was tuned on it.
eval-unseen: build
	@bash .ci/models.sh --testdata
	@bash .ci/models.sh --unseen
	bash benches/eval/run.sh --unseen --modes default,dense,keyword,hybrid
	bash benches/eval/run.sh --unseen --distractors --modes default

# The official A2A TCK against a fresh server: A2A_TCK_DIR=/path/to/a2a-tck make tck
# (categories: TCK_CATEGORIES="mandatory capabilities quality features"; docs/A2A.md).
# Twice: authentication off, then on (API keys; the TCK's authentication tests run).
tck: build
	bash benches/tck/run.sh $(TCK_CATEGORIES)
	TCK_AUTH=1 bash benches/tck/run.sh $(TCK_CATEGORIES)

clean-data:
	rm -rf $(DATA_DIR)
