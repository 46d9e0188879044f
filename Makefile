# The two contract commands are `make run` and `make test` (see README.md).
# Everything they need is installed by them, from PyPI, npm and Debian packages only.

SHELL := /bin/bash
PORT ?= 3000
SANDBOX_PORT ?= 8420

.PHONY: run run-scaled run-controlplane test setup setup-browser setup-proxy migrate seed sandbox reset lint bench bench-ui clean

run: setup ## Set up and start Billy on its embedded defaults (SQLite, local secrets, Stripe sandbox)
	@PORT=$(PORT) SANDBOX_PORT=$(SANDBOX_PORT) scripts/run.sh

WORKERS ?= 4
run-scaled: setup ## Start Billy scaled out: WORKERS processes behind one port on PostgreSQL (billy_scaled) and Redis
	@PORT=$(PORT) SANDBOX_PORT=$(SANDBOX_PORT) WORKERS=$(WORKERS) scripts/run_scaled.sh

CONTROLPLANE_PORT ?= 8000
run-controlplane: setup setup-proxy ## The control plane: signup at localhost:8000, each organisation its own instance at <name>.localhost:8000
	@PORT=$(CONTROLPLANE_PORT) scripts/run_controlplane.sh

test: setup setup-browser setup-proxy ## Set up and run the whole test suite (SQLite and PostgreSQL)
	@scripts/test.sh

setup: ## Python venv from pinned requirements, and bun (Reflex's JS toolchain) from npm
	@scripts/bootstrap.sh

setup-browser: ## Debian's Chromium for the browser tests
	@scripts/bootstrap_browser.sh

setup-proxy: ## Debian's Caddy, the reverse proxy in front of the local provisioner's instances ({org}.localhost)
	@scripts/bootstrap_proxy.sh

migrate: setup
	@.venv/bin/alembic upgrade head

reset: ## Wipe the local store, the sandbox's state and the secret store (keeps the venv); `run-scaled`'s too
	rm -rf data data-scaled data-controlplane
	@dropdb --if-exists -h 127.0.0.1 -U postgres billy_scaled 2>/dev/null || true
	@echo "Local data wiped: the next 'make run' starts from first-run signup."

bench: setup ## Page-query benchmark at scale (100k customers, 1M charges; SQLite and PostgreSQL). Not part of `make test`.
	@source scripts/env.sh && python -m bench.pages $(BENCH_ARGS)

bench-ui: setup setup-browser ## Speed in Chromium at scale: clicks, search, warm and cold loads, memory (bench/ui.py). Not part of `make test`.
	@source scripts/env.sh && python -m bench.ui $(BENCH_ARGS)

lint: setup ## Style, the import contracts (pyproject [tool.importlinter]) and the types of services/ and controlplane/ (mypy)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports
	.venv/bin/mypy

clean: reset
	rm -rf .venv .tools billy_app/.web .web
