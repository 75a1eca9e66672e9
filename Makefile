# tsad: `make run` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; GPU users install their CUDA build first (see README).
TORCH ?= torch==2.13.0

.PHONY: install install-ray run test test-threads test-slow table lint clean

$(BIN)/tsad-run: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,dev,sweeps,optuna,tracking]"
	touch $@

install: $(BIN)/tsad-run

# hydra/launcher=ray needs Ray, about 370 MiB more, so it is not part of `make install`; `make test-slow` installs it.
$(BIN)/ray: $(BIN)/tsad-run
	$(BIN)/pip install -q -e ".[ray]"
	touch $@

install-ray: $(BIN)/ray

run: install
	$(BIN)/tsad-run

test: install
	$(BIN)/pytest -q

# The contract tests under another torch thread count: a result that holds only for one thread count's
# floating-point rounding fails here (CI runs it after `make test`).
test-threads: install
	OMP_NUM_THREADS=2 $(BIN)/pytest -q tests/test_contract.py

test-slow: install-ray
	$(BIN)/pytest -q -m slow

# The reference table of the README (4 models x 2 datasets x 3 seeds), resumable.
table: install
	$(BIN)/tsad-run -m model=random,iforest,pca,lstm_vae dataset=synthetic,synthetic_points seed=0,1,2 trainer.max_epochs=3 plots=false resume=true hydra.sweep.dir=outputs/benchmark
	$(BIN)/tsad-table outputs/benchmark --metric roc_auc --out outputs/benchmark_tables

lint: install
	$(BIN)/ruff check tsad scripts tests

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
