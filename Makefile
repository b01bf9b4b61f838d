# Parley: `make up` runs the whole suite on the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SITE    = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

.PHONY: up test bench gen gen-check lint protos-vendor clean

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

lint: protos-vendor
	$(VENV)/bin/buf lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services gateway tests clients

up: $(STAMP)
	$(VENV)/bin/parley up

test: $(STAMP) lint gen-check
	$(PY) -m pytest -q

# LangGraph Agent Server, the benchmark's peer (issue 19), in a virtualenv of its own: pyproject's
# `bench` extra, installed alone (langgraph-api pins protobuf < 7; Parley's generated code needs 7).
LG_VENV  := .venv-langgraph
LG_STAMP := $(LG_VENV)/.installed
BENCH_REQS = $(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))\
	["project"]["optional-dependencies"]["bench"]))'

$(LG_STAMP): pyproject.toml $(STAMP)
	$(PYTHON) -m venv $(LG_VENV)
	$(LG_VENV)/bin/pip install -q --upgrade pip
	$(BENCH_REQS) > $(LG_VENV)/bench-requirements.txt
	$(LG_VENV)/bin/pip install -q -r $(LG_VENV)/bench-requirements.txt
	touch $(LG_STAMP)

# The benchmark (issues 6 and 19): results, report and plot in bench-results/, Parley beside
# LangGraph Agent Server. QUICK=1: a run of a few minutes.
bench: $(STAMP) $(LG_STAMP)
	$(PY) -m tests.bench.run $(if $(QUICK),--quick,) --out bench-results

clean:
	rm -rf $(VENV) $(LG_VENV) proto/google .pytest_cache
