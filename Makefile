# The README's commands. `make demo` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: setup demo test lint format bench bench-features bench-warehouse bench-training bench-scoring bench-dispatch bench-api bench-scale lock clean

$(BIN)/churn: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

setup: $(BIN)/churn  ## create .venv with the locked dependencies

demo: setup  ## generate the demo company and run the pipeline on the embedded default (SQLite, ./mlruns)
	$(BIN)/churn demo

test: setup lint  ## lint, then the whole test suite on SQLite and PostgreSQL
	$(BIN)/pytest -n $(PYTEST_WORKERS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup  ## ingest and demo-data benchmarks; prints a table (see docs/benchmarks.md)
	$(BIN)/python -m benchmarks

bench-features: setup  ## feature jobs on PostgreSQL, 20,000 customers (about 15 minutes; see docs/benchmarks.md)
	$(BIN)/python -m benchmarks.features --customers 20000 --months 12

bench-warehouse: setup  ## the feature jobs on DuckDB beside PostgreSQL, 5,000 customers (about 10 minutes; see docs/scaling.md)
	$(BIN)/python -m benchmarks.warehouse --customers 5000 --months 12

bench-training: setup  ## churn train vs a bare lightgbm.train, 100,000 customers x 26 weeks (hours: 20,000 took 25 minutes; see docs/benchmarks.md)
	$(BIN)/python -m benchmarks.training

bench-scoring: setup  ## churn score on 100,000 synthetic customers vs a bare booster.predict, PostgreSQL (about 2 minutes; see docs/benchmarks.md)
	$(BIN)/python -m benchmarks.scoring

bench-dispatch: setup  ## alert dispatch against a fake Slack limited to 1 message/s per channel, clean and with 20% 5xx (about 2 minutes)
	$(BIN)/python -m benchmarks.dispatch

bench-api: setup  ## API latency at a fixed request rate, uvicorn on PostgreSQL with 100,000 scored customers (about 2 minutes; see docs/api.md)
	$(BIN)/python -m benchmarks.api

bench-scale: setup  ## the whole pipeline on 100,000 customers (~48 M events) in PostgreSQL, every stage beside its baseline (about 90 minutes; see docs/benchmarks.md)
	$(BIN)/python -m benchmarks.scale --customers 100000 --months 12

lock:  ## re-resolve the newest allowed versions into constraints.txt (then run make test)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	( echo "# Exact versions the project is tested with; regenerate with 'make lock'."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e ' ) > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
