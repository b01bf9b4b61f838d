"""Internal listeners over mutual TLS (PARLEY_INTERNAL_TLS_CERT/_KEY/_CA), with a CA and
certificates made here: a run goes through store, runner and tool router over TLS, and the
internal listeners refuse plaintext, a client without a certificate and one from another CA;
`parley health` probes them over TLS, with no credential."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from agents.v1 import tool_router_service_pb2, tool_router_service_pb2_grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.common import channels, internal_tls
from services.common.internal_auth import InternalCredential, Role
from tests.fakes import bedrock as fb
from tests.internal import INTERNAL_SECRET

from .runner_suite import running_runner_suite, start_runner, unique


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _authority(directory: Path, name: str) -> dict[str, str]:
    """A CA and a certificate it signs for 127.0.0.1/localhost, as PEM files in `directory`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} parley")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "internal_tls_ca": (
            directory / f"{name}-ca.pem",
            ca.public_bytes(serialization.Encoding.PEM),
        ),
        "internal_tls_cert": (
            directory / f"{name}.pem",
            cert.public_bytes(serialization.Encoding.PEM),
        ),
        "internal_tls_key": (directory / f"{name}-key.pem", _pem(key)),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {setting: str(path) for setting, (path, _) in files.items()}


async def _discover(channel: grpc.aio.Channel) -> int:
    stub = tool_router_service_pb2_grpc.ToolRouterServiceStub(channel)
    reply = await stub.DiscoverTools(
        tool_router_service_pb2.DiscoverToolsRequest(),
        metadata=InternalCredential(INTERNAL_SECRET, Role.RUNNER).metadata(),
        timeout=5,
    )
    return len(reply.tools)


async def test_internal_listeners_speak_mutual_tls_only(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    tls = _authority(tmp_path, "parley")
    stranger = _authority(tmp_path, "stranger")
    async with running_runner_suite(await make_database_url(), **tls) as rs:
        # A run: the runner dials the store and the tool router over TLS.
        question = unique("Over TLS?")
        rs.bedrock.on(question, fb.text("encrypted"))
        run = await rs.start_run((await rs.create_conversation())["id"], question)
        assert (await rs.wait_run(run["id"]))["final_text"] == "encrypted"

        target = f"127.0.0.1:{rs.tooling_port}"
        credentials = internal_tls.channel_credentials(rs.settings)
        tooling = channels.service_name("tooling")
        async with channels.open_channel(target, tooling, credentials) as channel:
            assert await _discover(channel) == 0  # the certificate holder gets in

        refused = []
        plaintext = grpc.aio.insecure_channel(target)
        no_certificate = grpc.aio.secure_channel(
            target,
            grpc.ssl_channel_credentials(Path(tls["internal_tls_ca"]).read_bytes()),
        )
        foreign = grpc.aio.secure_channel(  # trusts the server; its certificate is no Parley's
            target,
            grpc.ssl_channel_credentials(
                Path(tls["internal_tls_ca"]).read_bytes(),
                Path(stranger["internal_tls_key"]).read_bytes(),
                Path(stranger["internal_tls_cert"]).read_bytes(),
            ),
        )
        for channel in (plaintext, no_certificate, foreign):
            async with channel:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await _discover(channel)
                refused.append(error.value.code())
        assert refused == [grpc.StatusCode.UNAVAILABLE] * 3


async def _health(*services: str, env: dict[str, str]) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "AWS_"))}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("parley")),
        "health",
        *services,
        env={**base, **env},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode().strip()


async def test_a_runner_dials_a_list_of_store_addresses_over_tls(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    """A list's authority is its first address, which the listeners' certificates name (here
    one listener, listed twice: the channel balances over both entries)."""
    tls = _authority(tmp_path, "parley")
    async with running_runner_suite(await make_database_url(), with_runner=False, **tls) as rs:
        store = rs.settings.store_addr
        runner = await start_runner(rs.settings.with_overrides(store_addr=f"{store},{store}"))
        try:
            question = unique("Over TLS, to a list?")
            rs.bedrock.on(question, fb.text("listed"))
            run = await rs.start_run((await rs.create_conversation())["id"], question)
            assert (await rs.wait_run(run["id"]))["final_text"] == "listed"
        finally:
            await runner.stop()


async def test_health_probes_the_internal_listeners_over_tls(
    make_database_url: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    tls = _authority(tmp_path, "parley")
    async with running_runner_suite(await make_database_url(), with_runner=False, **tls) as rs:
        store, tooling = f"127.0.0.1:{rs.store_port}", f"127.0.0.1:{rs.tooling_port}"
        env = {
            "PARLEY_API_ADDR": f"127.0.0.1:{rs.api_port}",  # public: plaintext, as always
            # The name certificates carry; the probe dials this host's port and checks the
            # listener's certificate against it.
            "PARLEY_STORE_ADDR": f"dns:///localhost:{rs.store_port}",
            "PARLEY_TOOLING_ADDR": f"localhost:{rs.tooling_port}",
            **{f"PARLEY_{setting.upper()}": path for setting, path in tls.items()},
        }
        code, line = await _health("api", "store", "tooling", env=env)
        assert (code, line) == (
            0,
            f"api 127.0.0.1:{rs.api_port}: SERVING; store {store}: SERVING; "
            f"tooling {tooling}: SERVING",
        )
        # A listener whose certificate does not name the host its clients dial is unhealthy.
        code, line = await _health(
            "store", env={**env, "PARLEY_STORE_ADDR": f"api.invalid:{rs.store_port}"}
        )
        assert code == 1 and line.startswith(f"store {store}: UNAVAILABLE"), line
        # Without the certificate, a plaintext probe gets no answer from a TLS listener.
        plain = {k: v for k, v in env.items() if not k.startswith("PARLEY_INTERNAL_TLS_")}
        code, line = await _health("store", env=plain)
        assert code == 1 and line.startswith(f"store {store}: UNAVAILABLE"), line
