# tsad: `make run` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; GPU users install their CUDA build first (see README).
TORCH ?= torch==2.13.0

.PHONY: install run test test-slow lint clean

$(BIN)/tsad-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,sweeps,optuna]"
	touch $@

install: $(BIN)/tsad-run

run: install
	$(BIN)/tsad-run

test: install
	$(BIN)/pytest -q

test-slow: install
	$(BIN)/pytest -q -m slow

lint: install
	$(BIN)/python -m compileall -q tsad scripts tests

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
