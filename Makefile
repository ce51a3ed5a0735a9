# Two commands matter: `make run` and `make test`. Both set up what is missing first.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test lint gen check-gen breaking baseline bench migrate certs prometheus image \
	image-base image-check FORCE

# Also redone when node_modules/ is gone (npm ci writes node_modules/.package-lock.json).
$(VENV)/.installed: pyproject.toml gen/python/pyproject.toml package.json package-lock.json \
		$(if $(wildcard node_modules/.package-lock.json),,FORCE)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e gen/python -e '.[dev,bench]'
	npm ci --no-audit --no-fund
	touch $@

setup: $(VENV)/.installed

## Start user_svc, order_svc and the gateway on SQLite under ./data; Ctrl-C stops all.
## ARGS="--certs certs": mutual TLS between them with make certs' certificates, HTTPS at the gateway.
run: setup
	$(PY) tools/run.py $(ARGS)

## Lint, type-check and every test (PostgreSQL tests run when TEST_DATABASE_URL is set).
test: setup lint
	$(PY) -m pytest

lint: setup
	ruff check .
	ruff format --check .
	mypy
	buf lint
	$(PY) tools/contract.py check

## Regenerate the stubs in gen/ from protos/: Python (buf.gen.yaml), then TypeScript (buf.gen.ts.yaml);
## then the console's bundle (console/ → gateway/console_assets/, esbuild).
gen: setup
	$(PY) tools/gen.py

## Fail if the committed stubs or console bundle differ from what `make gen` writes.
GENERATED := gen/ gateway/console_assets/
check-gen: gen
	@git diff --exit-code --stat -- $(GENERATED) \
	  && test -z "$$(git status --porcelain -- $(GENERATED))" \
	  || { echo "stale generated files ($(GENERATED)): run 'make gen' and commit"; exit 1; }

## Fail if protos/ breaks compatibility with the released contracts (contract/baseline.binpb).
breaking: setup
	$(PY) tools/contract.py check

## Record protos/ as the released contracts: only on purpose, when releasing.
baseline: setup
	$(PY) tools/contract.py baseline

## Apply schema migrations to the configured databases (also done at start-up).
migrate: setup
	$(PY) -m user_svc migrate
	$(PY) -m order_svc migrate

## A development CA and a certificate + key for each part under ./certs (kept unless ARGS=--force).
certs: setup
	$(PY) tools/certs.py $(ARGS)

## Throughput and latency of the running system (not a test); e.g. make bench ARGS=--quick;
## ARGS="--scale 10k,100k,1m": the scale benchmark, drawn to bench/out/scale.svg; ARGS=--plot redraws it
bench: setup
	$(PY) tools/bench.py $(ARGS)

## Prometheus (Debian's `prometheus` package) scraping what `make run` starts, with the alerting
## rules of deploy/monitoring; http://localhost:9090. Its data under ./data/prometheus.
prometheus:
	prometheus --config.file=deploy/monitoring/prometheus/prometheus.yml \
	  --storage.tsdb.path=data/prometheus --web.listen-address=127.0.0.1:9090

## The container image shop:dev (podman, else docker), with this machine's pip settings;
## here (no registry, podman's OCI runtime refused by the sandbox): make image-base, then
## make image ARGS="--base localhost/debian-python:3.11 -- --isolation chroot"
image: setup
	$(PY) tools/image.py build $(ARGS)

## A base image where no registry is reachable: Debian bookworm's Python 3.11 from this
## machine's apt sources (mmdebstrap, podman import) as localhost/debian-python:3.11 (root).
image-base: setup
	$(PY) tools/image.py base $(ARGS)

## What can be proved of shop:dev without `podman run` (slow; not part of make test): its
## config, its files, and its processes run from its root as its uid (needs podman, root).
image-check: setup
	$(PY) tools/image.py check $(ARGS)

FORCE:
