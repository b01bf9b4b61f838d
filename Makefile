# Parley: `make up` runs the whole suite on the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SITE    = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

.PHONY: up test bench gen gen-check docs-assets docs-assets-check lint protos-vendor clean

# The Python client (clients/python) is its own distribution, installed beside Parley for its tests.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e clients/python
	touch $(STAMP)

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

# /docs serves Swagger UI from gateway/docs_ui/vendor: npm's swagger-ui-dist, copied unchanged
# (gateway/docs_vendor.py). The check fetches the package again and fails on any difference.
docs-assets: $(STAMP)
	$(PY) -m gateway.docs_vendor vendor

docs-assets-check: $(STAMP)
	$(PY) -m gateway.docs_vendor check

lint: protos-vendor
	$(VENV)/bin/buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services gateway tests clients

up: $(STAMP)
	$(VENV)/bin/parley up

test: $(STAMP) lint gen-check docs-assets-check
	$(PY) -m pytest -q

# The benchmark (issue 6): results, report and plot in bench-results/. QUICK=1: a 2-3 minute run.
bench: $(STAMP)
	$(PY) -m tests.bench.run $(if $(QUICK),--quick,) --out bench-results

clean:
	rm -rf $(VENV) proto/google .pytest_cache
