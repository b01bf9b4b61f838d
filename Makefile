# Parley: `make up` runs the whole suite on the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# RUNTIME: what `parley` needs to run; DEV: + tests, lint, the type checker, proto tools, bench.
RUNTIME := $(VENV)/.installed
DEV     := $(VENV)/.installed-dev

.PHONY: up test bench gen gen-check lint typecheck protos-vendor clean

$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(RUNTIME)

# The bench extra too: the benchmark's smoke test runs inside `make test`. The Python client
# (clients/python) is its own distribution, installed beside Parley for its tests.
$(DEV): $(RUNTIME) clients/python/pyproject.toml
	$(PY) -m pip install -q -e '.[dev,bench]' -e clients/python
	touch $(DEV)

# proto/google/api/*.proto are committed (buf needs them inside its module); this refreshes them
# from googleapis-common-protos (`tools/protogen.py vendor-check` says whether they differ).
protos-vendor: $(DEV)
	$(PY) tools/protogen.py vendor

# Generated Python (messages, stubs, .pyi) lives in gen/ and is committed; never edit it by hand.
gen: $(DEV)
	$(PY) tools/protogen.py gen

# Fails when gen/ differs from what the protos generate.
gen-check: $(DEV)
	$(PY) tools/protogen.py check

lint: $(DEV)
	$(VENV)/bin/buf lint
	$(VENV)/bin/buf build -o /dev/null
	tools/buf_breaking.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services gateway tests tools clients
	$(VENV)/bin/mypy

typecheck: $(DEV)
	$(VENV)/bin/mypy

up: $(RUNTIME)
	$(VENV)/bin/parley up

test: $(DEV) lint gen-check
	$(PY) -m pytest -q

# The benchmark (issue 6): results, report and plot in bench-results/. QUICK=1: a 2-3 minute run.
bench: $(DEV)
	$(PY) -m tests.bench.run $(if $(QUICK),--quick,) --out bench-results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
