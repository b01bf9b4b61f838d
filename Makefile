# Parley: `make up` runs the whole suite on the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# RUNTIME: what `parley` needs to run; DEV: + tests, lint, the type checker, proto tools, bench.
RUNTIME := $(VENV)/.installed
DEV     := $(VENV)/.installed-dev

.PHONY: up test bench gen gen-check docs-assets docs-assets-check lint typecheck lock lock-check \
	protos-vendor console-screenshots clean

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

# /docs serves Swagger UI from gateway/docs_ui/vendor: npm's swagger-ui-dist, copied unchanged
# (gateway/docs_vendor.py). The check fetches the package again and fails on any difference.
docs-assets: $(DEV)
	$(PY) -m gateway.docs_vendor vendor

docs-assets-check: $(DEV)
	$(PY) -m gateway.docs_vendor check

# The README's console screenshots: the console's browser tests, keeping what they see.
console-screenshots: $(DEV)
	PARLEY_CONSOLE_SCREENSHOTS=docs/console $(PY) -m pytest -q tests/console

# promtool checks the alert rules and the Prometheus config (deploy/); from Debian's package.
PROMTOOL := $(VENV)/bin/promtool
$(PROMTOOL): tools/promtool.sh
	tools/promtool.sh $(VENV)/bin

lint: $(DEV) $(PROMTOOL)
	$(PROMTOOL) check rules deploy/alerts.yml
	$(PROMTOOL) check config deploy/prometheus.yml
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

# The suite mostly waits (processes starting, leases, streams): two workers halve it on 2 cores.
# A file stays on one worker (its module fixtures start one stack); tests pick free ports and
# name their own databases, so workers never share either. PYTEST_WORKERS=0: in one process.
PYTEST_WORKERS ?= 2
test: $(DEV) lint gen-check lock-check docs-assets-check
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

# LangGraph Agent Server, the benchmark's peer (issue 19), in a virtualenv of its own: pyproject's
# `peer` extra, installed alone (langgraph-api pins protobuf < 7; Parley's generated code needs 7).
LG_VENV  := .venv-langgraph
LG_STAMP := $(LG_VENV)/.installed
PEER_REQS = $(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))\
	["project"]["optional-dependencies"]["peer"]))'

$(LG_STAMP): pyproject.toml $(RUNTIME)
	$(PYTHON) -m venv $(LG_VENV)
	$(LG_VENV)/bin/pip install -q --upgrade pip
	$(PEER_REQS) > $(LG_VENV)/peer-requirements.txt
	$(LG_VENV)/bin/pip install -q -r $(LG_VENV)/peer-requirements.txt
	touch $(LG_STAMP)

# The benchmark (issues 6 and 19): results, report and plot in bench-results/, Parley beside
# LangGraph Agent Server. QUICK=1: a run of a few minutes.
bench: $(DEV) $(LG_STAMP)
	$(PY) -m tests.bench.run $(if $(QUICK),--quick,) --out bench-results

clean:
	rm -rf $(VENV) $(LG_VENV) .pytest_cache .mypy_cache
