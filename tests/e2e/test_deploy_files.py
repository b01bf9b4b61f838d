"""docker-compose.yml is validated here; images cannot be pulled or built on these machines."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip(
            "docker-compose is not installed (.ci/run installs Debian's): compose file "
            "NOT validated"
        )
    env = {**os.environ, "PARLEY_JWT_SECRET": "x" * 32}
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for service in ("api", "runner", "tooling", "gateway", "postgres", "prometheus"):
        assert f"  {service}:" in result.stdout
    services = yaml.safe_load(result.stdout)["services"]
    for name in ("api", "runner", "tooling", "gateway"):
        env = services[name]["environment"]
        assert env["PARLEY_STORE_ADDR"] == "api:50054", name
        # the internal secret: the host's when set, else the one init-secrets generated
        assert env["PARLEY_INTERNAL_SECRET_FILE"] == "/run/parley/internal_secret", name
        assert "PARLEY_INTERNAL_SECRET" in env, name
        assert services[name]["depends_on"]["init-secrets"] == {
            "condition": "service_completed_successfully"
        }, name
        assert "parley-secrets:/run/parley:ro" in services[name]["volumes"], name
    init = services["init-secrets"]
    assert "/run/parley/internal_secret" in " ".join(init["command"])
    assert init["volumes"] == ["parley-secrets:/run/parley:rw"]
    prometheus = (ROOT / "deploy/prometheus.yml").read_text()
    assert "gateway:8080" in prometheus and "api:9464" in prometheus
