"""`parley up` and `parley token` as a new user runs them: a real process, real ports."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt

from tests.ports import free_ports

PARLEY = str(Path(sys.executable).with_name("parley"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    return {**env, **extra}


def _up(tmp_path: Path, *args: str, **extra: str) -> tuple[subprocess.Popen[str], str, int]:
    """`parley up` on free ports in `tmp_path`: the process, its output up to the banner's
    last line, and the gateway's port."""
    http, api, runner, tooling, store = free_ports(5)
    env = _env(
        PARLEY_HTTP_PORT=str(http),
        PARLEY_API_ADDR=f"127.0.0.1:{api}",
        PARLEY_STORE_ADDR=f"127.0.0.1:{store}",
        PARLEY_RUNNER_ADDR=f"127.0.0.1:{runner}",
        PARLEY_TOOLING_ADDR=f"127.0.0.1:{tooling}",
        **extra,
    )
    process = subprocess.Popen(
        [PARLEY, "up", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("try:" in line for line in lines):
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line)
    return process, "".join(lines), http


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def test_up_prints_url_data_plane_and_token_and_serves_example_1(tmp_path: Path) -> None:
    process, output, http = _up(tmp_path)
    try:
        assert f"http://127.0.0.1:{http}" in output, output
        assert "f79cbdae-4848-47ca-95e8-69588364d185" in output, output
        token = re.search(r"token:\s+(\S+)", output).group(1)  # type: ignore[union-attr]

        base, auth = f"http://127.0.0.1:{http}", {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{base}/agents/conversations",
            headers=auth,
            json={
                "name": "hello world",
                "system_prompt": "You are a helpful assistant. Answer concisely.",
                "defaults": {
                    "model": "anthropic.claude-opus-4.6",
                    "data_plane_id": "f79cbdae-4848-47ca-95e8-69588364d185",
                    "execution_cluster": "shared",
                    "max_iterations": 3,
                    "max_tokens": 1024,
                    "temperature": 0.0,
                },
            },
        )
        assert created.status_code == 200 and created.json()["version"] == 0, created.text
        run = httpx.post(
            f"{base}/agents/conversations/{created.json()['id']}/runs",
            headers=auth,
            json={
                "client_op_id": str(uuid.uuid4()),
                "expected_version": 0,
                "payload": {"kind": "user_message", "text": "What is 2 + 2?"},
            },
        )
        assert run.status_code == 202 and run.json()["status"] == "pending", run.text
        assert (tmp_path / "parley.db").exists()  # the embedded default
    finally:
        _stop(process)


# No AWS credentials anywhere botocore looks (environment, files, instance metadata).
NO_AWS = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def test_up_without_aws_credentials_says_how_to_turn_the_fake_model_on(tmp_path: Path) -> None:
    process, output, _ = _up(tmp_path, **NO_AWS)
    try:
        assert "no AWS credentials found" in output, output
        assert "parley up --fake-model" in output and "PARLEY_FAKE_MODEL=true" in output
        assert re.search(r"model:\s+AWS Bedrock.*--fake-model", output), output
    finally:
        _stop(process)


def test_up_with_the_fake_model_setting_completes_a_first_run_without_aws(
    tmp_path: Path,
) -> None:
    process, output, http = _up(tmp_path, PARLEY_FAKE_MODEL="true", **NO_AWS)
    try:
        assert re.search(r"model:\s+built-in echo model", output), output
        assert "no AWS credentials" not in output  # Bedrock is not even set up
        token = re.search(r"token:\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        base, auth = f"http://127.0.0.1:{http}", {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{base}/agents/conversations",
            headers=auth,
            json={
                "defaults": {
                    "model": "anthropic.claude-opus-4.6",
                    "data_plane_id": "f79cbdae-4848-47ca-95e8-69588364d185",
                }
            },
        ).json()
        run = httpx.post(
            f"{base}/agents/conversations/{created['id']}/runs",
            headers=auth,
            json={
                "client_op_id": str(uuid.uuid4()),
                "expected_version": 0,
                "payload": {"kind": "user_message", "text": "What is 2 + 2?"},
            },
        ).json()
        with httpx.stream("GET", f"{base}/agents/runs/{run['id']}/events", headers=auth) as events:
            last = [line for line in events.iter_lines() if line.startswith("data:")][-1]
        finished = json.loads(last.removeprefix("data:"))["run"]
        assert finished["status"] == "completed", finished
        assert finished["final_text"] == "You said: What is 2 + 2?"
    finally:
        _stop(process)


def test_token_uses_the_configured_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            PARLEY,
            "token",
            "--company-id",
            "3",
            "--user-id",
            "4",
            "--scope",
            "agent_conversations:read",
            "--ttl",
            "60",
        ],
        cwd=tmp_path,
        env=_env(PARLEY_JWT_SECRET="s3cret-0123456789abcdef0123456789ab"),
        capture_output=True,
        text=True,
        check=True,
    )
    claims = jwt.decode(
        result.stdout.strip(), "s3cret-0123456789abcdef0123456789ab", algorithms=["HS256"]
    )
    assert (claims["company_id"], claims["user_id"], claims["scope"]) == (
        3,
        4,
        "agent_conversations:read",
    )
    assert 0 < claims["exp"] - time.time() <= 60


def test_serve_requires_a_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [PARLEY, "serve", "api"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0 and "PARLEY_JWT_SECRET" in result.stderr


def test_up_on_a_taken_port_says_which_setting_to_change(tmp_path: Path) -> None:
    http, api, runner, store = free_ports(4)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        env = _env(
            PARLEY_HTTP_PORT=str(http),
            PARLEY_API_ADDR=f"127.0.0.1:{api}",
            PARLEY_STORE_ADDR=f"127.0.0.1:{store}",
            PARLEY_RUNNER_ADDR=f"127.0.0.1:{runner}",
            PARLEY_TOOLING_ADDR=f"127.0.0.1:{taken}",
        )
        result = subprocess.run(
            [PARLEY, "up"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert f"127.0.0.1:{taken}" in result.stderr and "PARLEY_TOOLING_ADDR" in result.stderr
    assert "Traceback" not in result.stderr
