# One image for every Parley service (`parley serve api|runner|tooling|gateway`), the one-shot
# `parley migrate` and the `parley health` probe. Dependencies are constraints.txt's pins
# (`make lock`); no secret is baked in: every one comes from the environment at run time.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels for the pins and for Parley, installed into a virtualenv ----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The pins alone first, so this layer is rebuilt only when constraints.txt changes. Wheels only:
# the slim image has no compiler, and a dependency without a wheel should fail here, loudly.
COPY constraints.txt ./
RUN pip wheel --only-binary=:all: --wheel-dir /wheels --requirement constraints.txt
COPY pyproject.toml ./
COPY gen ./gen
COPY services ./services
COPY gateway ./gateway
# PIP_CONSTRAINT reaches the isolated build environment too: setuptools is a pin like the rest.
RUN PIP_CONSTRAINT=/src/constraints.txt pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/parley \
    && /opt/parley/bin/pip install --no-index --find-links /wheels --constraint constraints.txt \
        parley \
    && /opt/parley/bin/pip check

# --- runtime: the virtualenv on a slim Python, as an unprivileged user ----------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 parley \
    && useradd --system --uid 10001 --gid parley --home-dir /var/lib/parley --create-home \
        --shell /usr/sbin/nologin parley
COPY --from=build /opt/parley /opt/parley
ENV PATH=/opt/parley/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PARLEY_HOST=0.0.0.0
# `parley up`'s SQLite file and generated secret land here; served deployments use PostgreSQL
# and write nothing, so the root filesystem can be read-only.
WORKDIR /var/lib/parley
USER 10001:10001
# gateway, api, runner, tooling, store (internal), metrics of a gRPC service
EXPOSE 8080 50051 50052 50053 50054 9464
# With no service named, `parley health` probes whichever Parley listeners this container runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["parley", "health"]
ENTRYPOINT ["parley"]
CMD ["up"]
