# The two commands a newcomer needs (see README):
#   make quickstart   set up .venv and run scenarios/quickstart.yaml
#   make test         set up .venv and run the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup quickstart test test-fast lint bench clean

setup: $(VENV)/.installed

# torch==2.13.0 first: it is the CPU build pip finds on disk; a bare `torch` would pull a
# multi-GB CUDA build. The project's own range (<2.14) is then already satisfied.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

quickstart: setup
	$(BIN)/wedge run scenarios/quickstart.yaml

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: setup
	$(BIN)/python benchmarks/bench_foundation.py

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
