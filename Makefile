# Parley: `make up` runs the whole suite on the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SITE    = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

.PHONY: up test bench gen gen-check lint lock lock-check protos-vendor clean

# The runtime dependencies are held to constraints.txt, the pins the Docker image installs.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -c constraints.txt
	touch $(STAMP)

# Re-resolves pyproject.toml's runtime dependencies into constraints.txt (after changing them).
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m services.common.lockfile write

# Fails when constraints.txt no longer fits pyproject.toml (offline).
lock-check: $(STAMP)
	$(PY) -m services.common.lockfile check

# The google.api annotations ship in googleapis-common-protos; buf needs them inside its module.
protos-vendor: $(STAMP)
	mkdir -p proto/google/api
	cp $(SITE)/google/api/annotations.proto $(SITE)/google/api/http.proto proto/google/api/

# Generated Python (messages, stubs, .pyi) lives in gen/ and is committed; never edit it by hand.
gen: $(STAMP)
	$(PY) -m services.common.protogen gen

# Fails when gen/ differs from what the protos generate.
gen-check: $(STAMP)
	$(PY) -m services.common.protogen check

lint: protos-vendor
	$(VENV)/bin/buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services gateway tests
	$(VENV)/bin/hadolint Dockerfile

up: $(STAMP)
	$(VENV)/bin/parley up

test: $(STAMP) lint gen-check lock-check
	$(PY) -m pytest -q

# The benchmark (issue 6): results, report and plot in bench-results/. QUICK=1: a 2-3 minute run.
bench: $(STAMP)
	$(PY) -m tests.bench.run $(if $(QUICK),--quick,) --out bench-results

clean:
	rm -rf $(VENV) proto/google .pytest_cache
