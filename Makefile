# Two entry points for a fresh clone: `make run` and `make test`. Both build their own
# virtual environment in .venv from pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL for the second test pass; override to point elsewhere.
TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
# The orders-and-ledger state machine in the SQLite pass: ORDER_PROCESSES processes side by side, each
# running ORDER_EXAMPLES sequences of 50 steps from its own random seed (.ci/run: 2 x 1,000).
ORDER_EXAMPLES ?= 50
ORDER_PROCESSES ?= 1
STATE_MACHINE := tests/orders/test_state_machine.py
# pytest-xdist workers for each pass: one per core by default. Each worker has its own database.
TEST_WORKERS ?= auto

.PHONY: run test lint typecheck test-sqlite state-machine suite-sqlite test-postgres messages clean

# The venv's own pip installs the project (no upgrade of pip first: one download and install fewer). No bytecode
# is compiled ahead: a module is compiled when it is first imported, and most installed ones never are.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -e ".[dev]"
	touch $@

# The API documentation pages' scripts, from the npm registry, served by the service itself.
ASSETS := marketplace/web/assets
$(ASSETS)/node_modules/.installed: $(ASSETS)/package.json $(ASSETS)/package-lock.json
	cd $(ASSETS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium, for the console's browser tests (Playwright's own browser download is not reachable).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

## Install, migrate the SQLite database, seed demo data if it is empty, serve on $(HOST):$(PORT).
run: $(BIN)/.installed $(ASSETS)/node_modules/.installed
	$(BIN)/marketplace db upgrade
	$(BIN)/marketplace demo --if-empty
	$(BIN)/marketplace serve --host $(HOST) --port $(PORT)

## Install and run everything CI runs: lint (ruff, import contracts), types, the orders state machine and the suite
## on SQLite, then the suite on PostgreSQL. The web assets and chromium install (mostly waiting on the network and
## the disk) beside lint, the type check and the state machine, which keep the cores busy meanwhile.
test: $(BIN)/.installed
	$(MAKE) --no-print-directory -j 4 --output-sync=target $(ASSETS)/node_modules/.installed $(CHROMIUM) lint typecheck \
		state-machine
	$(MAKE) --no-print-directory suite-sqlite test-postgres

## After changing a rule's messages or an error's title: rewrite the catalogs' template and merge it into each
## catalog (marketplace/kit/locale), then translate what is new (tests/test_i18n.py names what is missing).
messages: $(BIN)/.installed
	$(BIN)/marketplace messages update

lint: $(BIN)/.installed
	$(BIN)/ruff check marketplace rules tests migrations $(wildcard bench)
	$(BIN)/ruff format --check marketplace rules tests migrations $(wildcard bench)
	$(BIN)/lint-imports

typecheck: $(BIN)/.installed
	$(BIN)/mypy

## The SQLite pass: the state machine, then the suite.
test-sqlite: state-machine suite-sqlite

## The orders-and-ledger state machine on SQLite, ORDER_PROCESSES processes of ORDER_EXAMPLES sequences each.
state-machine: $(BIN)/.installed
	@pids=""; for n in $$(seq $(ORDER_PROCESSES)); do \
		TEST_DATABASE_URL= ORDER_STATEFUL_EXAMPLES=$(ORDER_EXAMPLES) $(BIN)/pytest -q $(STATE_MACHINE) & pids="$$pids $$!"; \
	done; \
	status=0; for pid in $$pids; do wait $$pid || status=1; done; \
	if [ $$status -ne 0 ]; then echo "the state machine failed (SQLite)" >&2; exit 1; fi

## The suite on SQLite, the state machine aside (it has its own target above).
suite-sqlite: $(BIN)/.installed
	TEST_DATABASE_URL= $(BIN)/pytest -n $(TEST_WORKERS) --deselect $(STATE_MACHINE)

# On CI PostgreSQL must be there: start the local cluster if it is down, fail if unreachable.
# On a developer machine without it, this pass is skipped with a message.
test-postgres: $(BIN)/.installed
	@if ! $(BIN)/python -m tests.fixtures.postgres_probe "$(TEST_POSTGRES_URL)"; then \
		if [ -n "$$CI" ] && command -v pg_ctlcluster >/dev/null; then \
			for version in $$(ls /etc/postgresql 2>/dev/null); do \
				pg_ctlcluster --skip-systemctl-redirect $$version main start || true; \
			done; \
			sleep 2; \
		fi; \
	fi
	@if $(BIN)/python -m tests.fixtures.postgres_probe "$(TEST_POSTGRES_URL)"; then \
		TEST_DATABASE_URL="$(TEST_POSTGRES_URL)" $(BIN)/pytest -n $(TEST_WORKERS); \
	elif [ -n "$$CI" ]; then \
		echo "ERROR: PostgreSQL is not reachable at $(TEST_POSTGRES_URL); CI requires it." >&2; exit 1; \
	else \
		echo "############################################################################"; \
		echo "# SKIPPED: PostgreSQL is not reachable at $(TEST_POSTGRES_URL)."; \
		echo "# The concurrency and money tests did not run. Start PostgreSQL or set"; \
		echo "# TEST_POSTGRES_URL, then run 'make test-postgres'."; \
		echo "############################################################################"; \
	fi

clean:
	rm -rf $(VENV) var marketplace.db marketplace.db-wal marketplace.db-shm
