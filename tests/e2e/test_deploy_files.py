"""The Dockerfile and docker-compose.yml, checked as far as these machines allow: no image can be
pulled or built here, so the compose file goes through Debian's `docker-compose config` (its own
validation and interpolation) and the rendered result is held to what a deployment needs; the
Dockerfile is linted by hadolint in `make lint` and its invariants are read here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common import health

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "PARLEY_JWT_SECRET": "j" * 32,
    "PARLEY_INTERNAL_SECRET": "i" * 32,
    "POSTGRES_PASSWORD": "compose-test-password",
}
PARLEY_SERVICES = {"api": 2, "runner": 2, "gateway": 2, "tooling": 1}


def _compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip(
            "docker-compose is not installed (.ci/run installs Debian's): compose file "
            "NOT validated"
        )
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result = _compose_config(**SECRETS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_every_parley_container_has_its_healthcheck(compose: dict[str, Any]) -> None:
    for name in PARLEY_SERVICES:
        test = compose[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "parley", "health"] and test[3] == name, test
        assert set(test[3:]) <= set(health.SERVICES), test
    assert compose["api"]["healthcheck"]["test"][3:] == ["api", "store"]
    assert compose["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


def test_migrate_runs_once_before_the_api(compose: dict[str, Any]) -> None:
    migrate = compose["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert migrate["healthcheck"] == {"test": ["NONE"]}  # disabled: a one-shot serves nothing
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert compose["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert compose["api"]["command"] == ["serve", "api"]  # which no longer migrates


def test_dependents_wait_for_healthy_services(compose: dict[str, Any]) -> None:
    for name, needs in {"runner": {"api", "tooling"}, "gateway": {"api"}}.items():
        conditions = {dep: v["condition"] for dep, v in compose[name]["depends_on"].items()}
        assert conditions == {dep: "service_healthy" for dep in needs}, (name, conditions)


def test_replicas_and_one_host_port_per_gateway(compose: dict[str, Any]) -> None:
    for name, replicas in PARLEY_SERVICES.items():
        assert compose[name].get("deploy", {}).get("replicas", 1) == replicas, name
        assert "container_name" not in compose[name]  # would forbid a second replica
    (port,) = compose["gateway"]["ports"]
    low, high = (int(p) for p in str(port["published"]).split("-"))
    assert high - low + 1 == PARLEY_SERVICES["gateway"] and port["target"] == 8080
    for name in PARLEY_SERVICES:
        assert "ports" not in compose[name] or name == "gateway", name  # internal ports stay in


def test_secrets_come_from_the_environment_only(compose: dict[str, Any]) -> None:
    for missing in SECRETS:
        result = _compose_config(**{k: v for k, v in SECRETS.items() if k != missing})
        assert result.returncode != 0 and missing in result.stderr, (missing, result.stderr)
    text = (ROOT / "docker-compose.yml").read_text()
    for value in SECRETS.values():
        assert value not in text
    for name in PARLEY_SERVICES:  # one way in for each secret: the variable, no file, no volume
        env = compose[name]["environment"]
        assert env["PARLEY_JWT_SECRET"] == SECRETS["PARLEY_JWT_SECRET"], name
        assert env["PARLEY_INTERNAL_SECRET"] == SECRETS["PARLEY_INTERNAL_SECRET"], name
        assert "PARLEY_INTERNAL_SECRET_FILE" not in env and "volumes" not in compose[name], name
        assert env["PARLEY_STORE_ADDR"] == "dns:///api:50054", name  # the api's store listener


def test_prometheus_scrapes_every_replica() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    found = {
        (name, sd["port"])
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    assert found == {("api", 9464), ("runner", 9464), ("tooling", 9464), ("gateway", 8080)}


def _metric_names() -> set[str]:
    """Every sample name Parley's metrics can have (a family's name with its suffixes)."""
    from prometheus_client import REGISTRY

    import services.common.metrics  # noqa: F401 - defines them all

    suffixes = ("", "_total", "_bucket", "_count", "_sum", "_created")
    return {family.name + end for family in REGISTRY.collect() for end in suffixes}


def _referenced(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:parley|grpc_server)_[a-z_]+)\b", expr))


def test_alert_rules_and_dashboard_read_metrics_parley_serves() -> None:
    """promtool (make lint) checks the rules' syntax; this, that they name real metrics, and
    that the dashboard JSON is the one tools/grafana_dashboard.py writes."""
    import json
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import grafana_dashboard

    known = _metric_names()
    rules = yaml.safe_load((ROOT / "deploy/alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    committed = json.loads((ROOT / "deploy/grafana/parley.json").read_text())
    assert committed == grafana_dashboard.dashboard(), "run python tools/grafana_dashboard.py"
    exprs += [t["expr"] for panel in committed["panels"] for t in panel["targets"]]
    unknown = {name for expr in exprs for name in _referenced(expr)} - known
    assert not unknown, unknown
    assert (
        "alerts.yml" in yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())["rule_files"]
    )


def test_dockerfile_is_multi_stage_pinned_unprivileged_and_probed() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.M)
    assert stages == ["build", "runtime"], stages
    runtime = text.split(" AS runtime", 1)[1]
    assert "--requirement constraints.txt" in text and "--constraint constraints.txt" in text
    assert re.search(r"^USER 10001:10001$", runtime, re.M)  # numeric: runAsNonRoot can check it
    assert re.search(r'^HEALTHCHECK .*CMD \["parley", "health"\]$', runtime, re.M)
    assert "COPY --from=build /opt/parley /opt/parley" in runtime  # no compiler, no wheels
    for line in text.splitlines():  # nothing secret is baked into a layer
        if line.startswith(("ENV", "ARG")):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|AWS_", line), line
