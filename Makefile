# Every target builds what it needs: on a fresh machine `make run` or `make test` is
# the whole set-up. The virtual environment lives in .venv (git ignores it).

PYTHON    ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
PY        := $(BIN)/python
STAMP     := $(VENV)/.deps-stamp
CORE_SRC  := $(wildcard rust/*.rs rust/**/*.rs) Cargo.toml pyproject.toml
CORE_SO   := $(VENV)/.core-stamp
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help deps build run test test-rust test-python lint fmt bench soak \
        docker-build docker-up clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

deps: $(STAMP) ## create .venv with the pinned tools; install redis-server if missing
	@command -v redis-server >/dev/null || ./scripts/install-redis.sh

$(CORE_SO): $(STAMP) $(CORE_SRC)
	$(BIN)/maturin develop --release --quiet
	touch $@

build: deps $(CORE_SO) ## build the Rust extension into .venv (release)

run: build ## build everything and serve the demo on :$SERVER_PORT (default 8080)
	$(BIN)/gunicorn -c configs/gunicorn.conf.py shardlimit.demo:app

test: build test-rust test-python ## cargo test, then the whole pytest suite

test-rust:
	cargo test --quiet

test-python: build
	$(PY) -m pytest -q

lint: deps ## the gates of .ci/run: rustfmt, clippy, ruff, mypy --strict, stubtest
	cargo fmt --check
	cargo clippy --quiet --all-targets -- -D warnings
	cargo clippy --quiet --all-targets --features python -- -D warnings
	$(BIN)/ruff check python tests benches configs fuzz
	$(BIN)/ruff format --check python tests benches configs fuzz
	$(MAKE) --no-print-directory build
	$(BIN)/mypy
	$(PY) -m mypy.stubtest shardlimit._core

fmt: deps ## format Rust and Python in place
	cargo fmt
	$(BIN)/ruff format python tests benches configs fuzz
	$(BIN)/ruff check --fix python tests benches configs fuzz

bench: build ## criterion on the core, the counters' cost, then the Python side by side
	cargo bench --bench core -- --noplot
	cargo bench --bench core --no-default-features -- --noplot
	./benches/contention_cost.sh
	$(PY) benches/bench_python.py
	$(PY) benches/bench_redis.py
	$(PY) benches/bench_http.py

soak: build ## long runs: model, floods, leaks, concurrency, fuzzing (not in `make test`)
	$(PY) -m pytest -q -m slow tests
	PROPTEST_CASES=5000 cargo test --quiet --test proptest_core
	$(PY) benches/soak.py

docker-build: ## build the image (needs a Docker engine)
	docker build -t shardlimit:latest .

docker-up: ## demo plus Redis with docker compose (needs a Docker engine)
	docker compose -f deployments/docker-compose.yml up --build

clean: ## remove build outputs and the virtual environment
	cargo clean
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
