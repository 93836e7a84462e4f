# Aura: `make run` starts the three services locally; `make test` runs every test.
# Both set everything up first on a machine with nothing but Python 3.11+, make and
# access to the package registries.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv
SYNCED := $(VENV)/.synced
PYPROJECTS := pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
BUF := node_modules/.bin/buf
PYTEST_ARGS ?=

.PHONY: help setup run test lint fmt proto bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): uv.lock $(PYPROJECTS) | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(SYNCED) ## Create .venv with every service and the dev tools (uv, from uv.lock)

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: $(SYNCED) ## Run telephony, llm and memory in the foreground (Ctrl-C stops all)
	@exec $(VENV)/bin/aura-stack

test: $(SYNCED) ## Run every test: unit, integration (real processes) and e2e
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(SYNCED) $(BUF) ## ruff, mypy --strict and buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint

bench: $(SYNCED) ## Measure throughput and latency (figures, not tests), into .bench/
	$(VENV)/bin/python -m bench.memory

fmt: $(SYNCED) ## Format the Python code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

proto: $(SYNCED) ## Regenerate the committed gRPC stubs from proto/
	$(VENV)/bin/python libs/aura-proto/generate.py

clean: ## Remove the environments and caches
	rm -rf $(VENV) .tools node_modules .mypy_cache .ruff_cache .pytest_cache
