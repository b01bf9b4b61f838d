"""`parley up` and `parley token` as a new user runs them: a real process, real ports."""

from __future__ import annotations

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

PARLEY = str(Path(sys.executable).with_name("parley"))


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    return {**env, **extra}


def test_up_prints_url_data_plane_and_token_and_serves_example_1(tmp_path: Path) -> None:
    http, api, runner, tooling, store = _free_ports(5)
    env = _env(
        PARLEY_HTTP_PORT=str(http),
        PARLEY_API_ADDR=f"127.0.0.1:{api}",
        PARLEY_STORE_ADDR=f"127.0.0.1:{store}",
        PARLEY_RUNNER_ADDR=f"127.0.0.1:{runner}",
        PARLEY_TOOLING_ADDR=f"127.0.0.1:{tooling}",
    )
    process = subprocess.Popen(
        [PARLEY, "up"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("token:" in line for line in lines):
            line = process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line)
        output = "".join(lines)
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
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0


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
    http, api, runner = _free_ports(3)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        env = _env(
            PARLEY_HTTP_PORT=str(http),
            PARLEY_API_ADDR=f"127.0.0.1:{api}",
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
