# Ferry's three commands: `make demo`, `make test` and `make up`. Each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
# Prefect telemetry off for everything make starts (demo, tests, up): Ferry sends nothing anywhere.
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install blocks demo up lint test test-services bench bench-sftp clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

# Node-based test servers (Azurite) from package.json into ./node_modules; Node itself from Debian when missing.
node_modules/.installed: package.json package-lock.json
	command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Register Ferry's block types (and the collection blocks it uses) with the Prefect server
# (PREFECT_API_URL, or the local ephemeral database), so the UI can create them.
blocks: install
	$(BIN)/ferry blocks register

demo: install
	$(BIN)/ferry demo

# Ferry as a service on this machine: a Prefect server, every deployment and job, the HTTP API (Ctrl-C stops it).
up: install
	$(BIN)/ferry up

# Real servers the tests talk to (PostgreSQL, ...): installed and started when missing.
test-services:
	bash .ci/services.sh

# ruff (lint + format check) and the import contract: dependencies point one way (pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=. $(BIN)/lint-imports

test: install node_modules/.installed test-services lint
	$(BIN)/pytest -n 2 --dist loadfile

bench: install test-services
	$(BIN)/python bench/export_bench.py

# SFTP upload speed vs OpenSSH's `sftp put` (installs openssh-client from Debian when missing).
bench-sftp: install
	$(BIN)/python bench/sftp_bench.py --check

# Soak: 50 concurrent imports/exports, Prefect server on PostgreSQL, two runners; no run or row lost (BENCHMARKS.md "Soak").
.PHONY: bench-soak
bench-soak: install test-services
	$(BIN)/python bench/soak_bench.py

clean:
	rm -rf $(VENV) data .pytest_cache
