# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install demo test lint bench bench-import chaos all clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(BIN)/dispatcher demo

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/dispatcher bench

# One campaign per fault (a worker killed or stopped, the SMSC link dropped or the SMSC restarted,
# Redis restarted; PostgreSQL restarted with ARGS=--database-url=postgresql+psycopg://...).
# Exits 1 if anything was sent twice or lost.
chaos: install
	$(BIN)/dispatcher chaos $(ARGS)

# 2 million generated rows into DISPATCHER_DATABASE_URL (unset: a scratch SQLite file), twice.
# On a scratch database that already has subscribers: make bench-import ARGS=--wipe
bench-import: install
	$(BIN)/python -m dispatcher.import_bench --rows 2000000 $(ARGS)

all: lint test

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
