# Two entry points for a fresh clone (see README "Quick start"):
#   make demo   set up .venv and run the whole pipeline on the embedded sample
#   make test   set up .venv (test, app and baseline extras: torch ~5.5 GB) and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= app,test,baseline,fast,dask
PYTEST_ARGS ?=

.PHONY: demo test setup setup-test browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[app]'

setup-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	-@bash tests/install_browser.sh

demo: setup
	$(BIN)/cococxr demo --out cococxr-demo

test: setup-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup-test
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis cococxr-demo
