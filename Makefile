# Parley: `make up` runs the whole suite on the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# RUNTIME: what `parley` needs to run; DEV: + tests, lint, the type checker, proto tools, bench.
RUNTIME := $(VENV)/.installed
DEV     := $(VENV)/.installed-dev

.PHONY: up test bench gen gen-check lint typecheck lock lock-check protos-vendor clean

# The runtime dependencies are held to constraints.txt, the pins the Docker image installs.
$(RUNTIME): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e . -c constraints.txt
	touch $(RUNTIME)

# The bench extra too: the benchmark's smoke test runs inside `make test`. The Python client
# (clients/python) is its own distribution, installed beside Parley for its tests. The runtime
# stays on its pins.
$(DEV): $(RUNTIME) clients/python/pyproject.toml
	$(PY) -m pip install -q -e '.[dev,bench]' -e clients/python -c constraints.txt
	touch $(DEV)

# Re-resolves pyproject.toml's runtime dependencies into constraints.txt (after changing them).
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m services.common.lockfile write

# Fails when constraints.txt no longer fits pyproject.toml (offline).
lock-check: $(DEV)
	$(PY) -m services.common.lockfile check

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
	$(VENV)/bin/hadolint Dockerfile

typecheck: $(DEV)
	$(VENV)/bin/mypy

up: $(RUNTIME)
	$(VENV)/bin/parley up

test: $(DEV) lint gen-check lock-check
	$(PY) -m pytest -q

# The benchmark (issue 6): results, report and plot in bench-results/. QUICK=1: a 2-3 minute run.
bench: $(DEV)
	$(PY) -m tests.bench.run $(if $(QUICK),--quick,) --out bench-results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
