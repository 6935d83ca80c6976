# Two entry points for a fresh clone: `make run` and `make test`. Both build their own
# virtual environment in .venv from pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# PostgreSQL for the second test pass; override to point elsewhere.
TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
# Sequences of 50 steps the orders-and-ledger state machine runs in the SQLite pass (.ci/run: 2000).
ORDER_EXAMPLES ?= 50

.PHONY: run test lint typecheck test-sqlite test-postgres clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## Install, migrate the SQLite database, seed demo data if it is empty, serve on $(HOST):$(PORT).
run: $(BIN)/.installed
	$(BIN)/marketplace db upgrade
	$(BIN)/marketplace demo --if-empty
	$(BIN)/marketplace serve --host $(HOST) --port $(PORT)

## Install and run everything CI runs: lint, types, the suite on SQLite, then on PostgreSQL.
test: $(BIN)/.installed lint typecheck test-sqlite test-postgres

lint: $(BIN)/.installed
	$(BIN)/ruff check marketplace rules tests migrations $(wildcard bench)
	$(BIN)/ruff format --check marketplace rules tests migrations $(wildcard bench)

typecheck: $(BIN)/.installed
	$(BIN)/mypy

test-sqlite: $(BIN)/.installed
	TEST_DATABASE_URL= ORDER_STATEFUL_EXAMPLES=$(ORDER_EXAMPLES) $(BIN)/pytest

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
		TEST_DATABASE_URL="$(TEST_POSTGRES_URL)" $(BIN)/pytest; \
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
