# Runyard: `make dev` starts the embedded server on the example graphs; `make test` runs
# every test. Both create the virtualenv and install what they need on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 2024
CONFIG ?= examples/langgraph.json

.PHONY: install browser js dev serve test test-fast lint format clean bench-quick

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

dev: install
	$(BIN)/runyard dev --config $(CONFIG) --port $(PORT)

serve: install
	$(BIN)/runyard serve --config $(CONFIG) --port $(PORT)

test: install browser js
	$(BIN)/ruff check app tests bench migrations examples
	$(BIN)/python -m pytest tests

browser:
	@./scripts/install-chromium

js:
	@./scripts/install-js-client

test-fast: install
	$(BIN)/python -m pytest tests/unit tests/integration

lint: install
	$(BIN)/ruff check app tests bench migrations examples
	$(BIN)/ruff format --check app tests bench migrations examples

format: install
	$(BIN)/ruff format app tests bench migrations examples

clean:
	rm -rf $(VENV) .runyard .pytest_cache .ruff_cache tests/js/node_modules

# The benchmark (docs/performance.md): starts its own servers on a scratch Postgres database
# and a Redis key prefix, checks every result, prints figures against the targets and writes
# bench/results/latest.json. Not part of `make test`. Options: make bench BENCH_ARGS="--repeat 3
# --only wait --shape production --json".
.PHONY: bench bench-profile
BENCH_ARGS ?=

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: install
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

# Where the production server's time goes under the runs.wait load (py-spy, installed here).
bench-profile: install
	$(BIN)/pip install --quiet py-spy
	rm -f bench/results/profile-production-wait-*.txt
	-$(BIN)/python -m bench.run --profile --only wait --shape production $(BENCH_ARGS)
	$(BIN)/python -m bench.profiling bench/results/profile-production-wait-*.txt
