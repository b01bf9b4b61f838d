"""Platform-owned MCP servers get a minted bearer token; it never reaches the database, the logs,
or any response, and other servers get no credentials."""

from __future__ import annotations

import logging
from pathlib import Path

import jwt
import pytest

from services.api.db import migrate
from tests.fakes import bedrock as fb
from tests.fakes import mcp_servers

from tests.spec_examples import example_defaults

from .conftest import SECRET
from .runner_suite import running_runner_suite, unique


async def test_allowlisted_server_gets_a_token_that_is_never_persisted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    owned, public = mcp_servers.AuthRecorder(), mcp_servers.AuthRecorder()
    database = tmp_path / "parley.db"
    await migrate.upgrade(f"sqlite+aiosqlite:///{database}")
    async with (
        mcp_servers.serve(owned.app()) as owned_url,
        mcp_servers.serve(public.app()) as public_url,
        running_runner_suite(
            f"sqlite+aiosqlite:///{database}",
            mcp_allow_private_networks=True,
            mcp_auth_allowlist=(owned_url,),
        ) as rs,
    ):
        question = unique("Ping both servers.")
        rs.bedrock.on(
            question,
            fb.tool_uses(("tu_owned", "own-ping", {}), ("tu_public", "pub-ping", {})),
            fb.text("both answered"),
        )
        servers = [{"alias": "own", "url": owned_url}, {"alias": "pub", "url": public_url}]
        conversation = await rs.create_conversation(defaults=example_defaults(mcp_servers=servers))
        run = await rs.start_run(conversation["id"], question)
        done = await rs.wait_run(run["id"])
        assert done["status"] == "completed", done
        responses = str(done) + str(await rs.messages(conversation["id"]))
        model_requests = str([r.body for r in rs.bedrock.requests_for(question)])
        # Parley's own API refuses a token minted for an MCP server.
        for value in {v for v in owned.seen if v}:
            refused = await rs.http.get("/agents/conversations", headers={"Authorization": value})
            assert refused.status_code == 401, refused.text
            assert "not a Parley API token" in refused.json()["detail"]

    tokens = {value.removeprefix("Bearer ") for value in owned.seen if value}
    assert owned.seen and all(value and value.startswith("Bearer ") for value in owned.seen)
    for token in tokens:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=owned_url)
        assert (claims["company_id"], claims["user_id"]) == (1, 1)  # the run's owner
        assert claims["scope"] == "mcp:invoke" and claims["exp"] - claims["iat"] <= 60
    assert len(tokens) >= 2  # one for the discovery, one for the call: never one for the run

    assert public.seen and all(value is None for value in public.seen)

    stored = b"".join(p.read_bytes() for p in tmp_path.glob("parley.db*"))
    for token in tokens:
        signature = token.rsplit(".", 1)[1]
        assert signature.encode() not in stored
        assert signature not in caplog.text
        assert signature not in responses
        assert signature not in model_requests
