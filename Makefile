# Two commands do all the set-up: `make demo` (score the bundled examples) and `make test`.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo test test-fast lint bench serve clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.full: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,audio,server,semantic,train,ray]'
	touch $@

demo: $(VENV)/.core
	$(BIN)/kefuqa check examples/

test: $(VENV)/.full
	bash scripts/setup-system.sh
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/kefuqa
	$(BIN)/python -m pytest -q --ignore=tests/test_batch_scale.py
	# the Ray tests in a process of their own: a Ray driver whose local cluster goes away may end its process
	$(BIN)/python -m pytest -q tests/test_batch_scale.py

# the suite without the tests marked slow (browsers, audio synthesis and ASR, tests/service, subprocesses)
test-fast: $(VENV)/.full
	$(BIN)/python -m pytest -q -m "not slow"

$(VENV)/.server: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[server]'
	touch $@

serve: $(VENV)/.server
	$(BIN)/kefuqa serve

lint: $(VENV)/.full
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src/kefuqa

bench: $(VENV)/.core
	$(BIN)/python bench/bench_check.py

clean:
	rm -rf $(VENV) build *.egg-info
