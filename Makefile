# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install demo test fuzz lint bench bench-vs-kannel profile bench-import chaos all clean

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

# schemathesis over the whole API and hypothesis over the parsers, with many more examples than
# the pass `make test` runs (DISPATCHER_FUZZ_EXAMPLES=N to change; PostgreSQL as for the tests).
fuzz: install
	DISPATCHER_FUZZ_EXAMPLES=$${DISPATCHER_FUZZ_EXAMPLES:-60} $(BIN)/pytest -p no:cacheprovider -s \
		tests/test_api_fuzz.py tests/test_parsers_fuzz.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/dispatcher bench

# Kannel (../shared/bench/kannel_bench.sh) and the dispatcher against the same SMSC stand-in,
# three rounds; prints the rate and CPU ratios. ARGS=--postgres for the dispatcher on PostgreSQL.
bench-vs-kannel: install
	$(BIN)/python -m dispatcher.versus_kannel $(ARGS)

# py-spy samples every process of a 100,000-message benchmark; the workers' CPU by part.
profile: install
	mkdir -p var
	$(BIN)/py-spy record --subprocesses --nonblocking -r 200 -f raw -o var/profile.raw -- \
		$(BIN)/dispatcher bench --subscribers 100000 --var-dir var/profile $(ARGS)
	$(BIN)/python -m dispatcher.flame var/profile.raw

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
