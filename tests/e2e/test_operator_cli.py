"""The CLI as an operator meets it: `--version`, one clear line (no traceback) for a bad setting
and for a dependency that is down, `parley token` that never signs with a secret no server has,
and `parley up` whose every log line is JSON under PARLEY_LOG_FORMAT=json, the lines about a
run carrying its ids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.ports import free_port
from tests.fakes import mcp_servers

PARLEY = str(Path(sys.executable).with_name("parley"))
SECRETS = {
    "PARLEY_JWT_SECRET": "operator-jwt-0123456789abcdef0123456789",
    "PARLEY_INTERNAL_SECRET": "operator-internal-0123456789abcdef0123",
}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_", "OTEL_"))}
    ports = {
        "PARLEY_HTTP_PORT": str(free_port()),
        "PARLEY_API_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_STORE_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_RUNNER_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_TOOLING_ADDR": f"127.0.0.1:{free_port()}",
        "PARLEY_METRICS_PORT": str(free_port()),
    }
    return {**env, **ports, **extra}


def _fails_with_one_line(args: list[str], cwd: Path, **env: str) -> str:
    result = subprocess.run(
        [PARLEY, *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0, result
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


def test_version_is_the_installed_distributions() -> None:
    result = subprocess.run([PARLEY, "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"parley {metadata.version('parley')}"


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    line = _fails_with_one_line(["up"], tmp_path, PARLEY_HTTP_PORT="abc")
    assert line == "PARLEY_HTTP_PORT='abc': not a whole number"
    line = _fails_with_one_line(["serve", "api"], tmp_path, PARLEY_HTTP_PORT="99999", **SECRETS)
    assert line.startswith("PARLEY_HTTP_PORT='99999'"), line
    line = _fails_with_one_line(["up"], tmp_path, PARLEY_LOG_FORMAT="xml")
    assert line == "PARLEY_LOG_FORMAT='xml': choose one of text, json"
    line = _fails_with_one_line(["up"], tmp_path, PARLEY_FAKE_MODEL="maybe")
    assert line.startswith("PARLEY_FAKE_MODEL='maybe': not a boolean"), line
    line = _fails_with_one_line(["up"], tmp_path, PARLEY_RUNNER_CONCURRENCY="-1")
    assert line == "PARLEY_RUNNER_CONCURRENCY='-1': must be at least 0"
    line = _fails_with_one_line(["up"], tmp_path, PARLEY_RUNNER_MEMORY_MB="lots")
    assert line == "PARLEY_RUNNER_MEMORY_MB='lots': not a whole number"
    assert not (tmp_path / "parley.db").exists()  # stopped before anything started


def test_token_elsewhere_refuses_rather_than_sign_with_a_new_secret(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["token", "--company-id", "1", "--user-id", "1"]
    line = _fails_with_one_line(args, elsewhere)
    assert str(elsewhere / ".parley" / "jwt_secret") in line and "PARLEY_JWT_SECRET" in line
    assert not (elsewhere / ".parley").exists()  # no secret was made
    # Where `parley up` keeps its secret, the token is signed with it.
    (tmp_path / ".parley").mkdir()
    (tmp_path / ".parley" / "jwt_secret").write_text("kept-by-up-0123456789abcdef0123456789")
    result = subprocess.run(
        [PARLEY, *args], cwd=tmp_path, env=_env(), capture_output=True, text=True, check=True
    )
    claims = jwt.decode(
        result.stdout.strip(), "kept-by-up-0123456789abcdef0123456789", algorithms=["HS256"]
    )
    assert (claims["company_id"], claims["user_id"]) == (1, 1)


def test_a_gateway_whose_api_is_down_stops_with_one_line(tmp_path: Path) -> None:
    env = _env(PARLEY_API_WAIT_S="0.3", **SECRETS)
    line = _fails_with_one_line(["serve", "gateway"], tmp_path, **env)
    assert "cannot read the API's routes from " + env["PARLEY_API_ADDR"] in line, line
    assert "PARLEY_API_ADDR" in line


def test_an_api_whose_database_is_down_stops_with_one_line(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/parley"
    line = _fails_with_one_line(["serve", "api"], tmp_path, PARLEY_DATABASE_URL=url, **SECRETS)
    assert line.startswith(f"cannot reach the database {url}"), line


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return parsed


def test_json_logs_carry_the_run_ids_and_the_access_log(tmp_path: Path) -> None:
    """Every line `parley up` writes to stderr is one JSON object; a run's transitions and its
    failure (an MCP server that is down, with its cause) carry the run's ids."""
    env = _env(PARLEY_LOG_FORMAT="json", PARLEY_ACCESS_LOG="true", PARLEY_FAKE_MODEL="true")
    stderr = tmp_path / "stderr.log"
    with open(stderr, "w") as err:
        process = subprocess.Popen(
            [PARLEY, "up"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        )
    try:
        assert process.stdout is not None
        token = ""
        for line in process.stdout:
            if "token:" in line:
                token = line.split()[-1]
            if "try:" in line:
                break
        assert token, stderr.read_text()
        base = f"http://127.0.0.1:{env['PARLEY_HTTP_PORT']}"
        auth = {"Authorization": f"Bearer {token}"}
        traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            ids = {}
            for servers in ([], [{"alias": "gone", "url": mcp_servers.down_url()}]):
                defaults = {
                    "model": "anthropic.claude-opus-4.6",
                    "data_plane_id": "f79cbdae-4848-47ca-95e8-69588364d185",
                    "mcp_servers": servers,
                }
                created = client.post("/agents/conversations", json={"defaults": defaults}).json()
                run = client.post(
                    f"/agents/conversations/{created['id']}/runs",
                    json={
                        "client_op_id": str(uuid.uuid4()),
                        "expected_version": 0,
                        "payload": {"kind": "user_message", "text": "Log me."},
                    },
                    headers={"traceparent": traceparent},
                ).json()
                with client.stream("GET", f"/agents/runs/{run['id']}/events") as events:
                    for _ in events.iter_lines():
                        pass  # to the end of the stream: the run is over
                ids["ok" if not servers else "down"] = (run["id"], created["id"])
            assert client.get("/agents/runs/not-a-uuid").status_code in (400, 404)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    lines = _json_lines(stderr.read_text())
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)

    def about(run_id: str) -> list[dict[str, Any]]:
        return [line for line in lines if line.get("run_id") == run_id]

    trace_id = traceparent.split("-")[1]
    ok_run, ok_conversation = ids["ok"]
    ok = about(ok_run)
    assert [line["message"] for line in ok] == ["run accepted", "run started", "run completed"]
    for line in ok:
        assert line["conversation_id"] == ok_conversation
        assert (line["company_id"], line["user_id"], line["trace_id"]) == (1, 1, trace_id)
    down = about(ids["down"][0])
    assert [line["status"] for line in down] == ["pending", "running", "failed"], down
    assert down[-1]["error_type"] == "McpDiscoveryFailed" and down[-1]["level"] == "warning"
    mcp = [line for line in lines if line["logger"] == "parley.tooling"]
    assert mcp and mcp[0]["cause"] and "`gone`" in mcp[0]["message"], mcp
    assert not any("exception" in line for line in lines)  # expected conditions: no traceback
    access = [line for line in lines if line["logger"] == "parley.access"]
    assert any(
        line["path"] == "/agents/runs/not-a-uuid" and line["http_status"] >= 400 for line in access
    )
    assert all(line["request_id"] for line in access)
