"""Address settings: one address, a list of IP addresses, or a dns:/// target; the first address
is where a serving process listens; what gRPC cannot dial is refused with a clear message."""

from __future__ import annotations

import pytest

from services.common import addresses
from services.common.config import load_settings


@pytest.mark.parametrize(
    ("setting", "target", "first"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051", "127.0.0.1:50051"),
        ("api:50051", "api:50051", "api:50051"),  # a name: resolved, maybe to several
        ("dns:///api:50051", "dns:///api:50051", "api:50051"),
        ("dns://10.0.0.53/api:50051", "dns://10.0.0.53/api:50051", "api:50051"),
        ("10.0.0.1:1, 10.0.0.2:2", "ipv4:10.0.0.1:1,10.0.0.2:2", "10.0.0.1:1"),
        ("[::1]:1,[fd00::2]:2", "ipv6:[::1]:1,[fd00::2]:2", "[::1]:1"),
    ],
)
def test_forms(setting: str, target: str, first: str) -> None:
    parsed = addresses.parse(setting)
    assert (parsed.target, parsed.first) == (target, first)
    assert parsed.first_port == int(first.rpartition(":")[2])


def test_first_host() -> None:
    assert addresses.parse("dns:///parley-api:50054").first_host == "parley-api"
    assert addresses.parse("[::1]:1,[::2]:2").first_host == "::1"


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("", "is empty"),
        ("api", "is not host:port"),
        ("api:http", "is not host:port"),
        ("api:70000", "is not host:port"),
        ("api:1,api2:1", "is not an IP address"),
        ("10.0.0.1:1,[::1]:1", "not both"),
        ("dns:///a:1,dns:///b:1", "one name"),
        ("10.0.0.1:1,::1:1", "in brackets"),
    ],
)
def test_refused(setting: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        addresses.parse(setting, "PARLEY_API_ADDR")


def test_settings_refuse_an_address_grpc_cannot_dial() -> None:
    environ = {"PARLEY_RUNNER_ADDR": "runner-1:50052,runner-2:50052"}
    with pytest.raises(SystemExit, match="PARLEY_RUNNER_ADDR: 'runner-1:50052' in a list"):
        load_settings(embedded=False, environ=environ, require_secrets=False)
    listed = load_settings(
        embedded=False, environ={"PARLEY_API_ADDR": "10.0.0.1:1,10.0.0.2:1"}, require_secrets=False
    )
    assert listed.api_addr == "10.0.0.1:1,10.0.0.2:1"


def test_a_runner_name_may_not_contain_the_incarnation_separator() -> None:
    for name in ("a/b", "r" * 101):
        with pytest.raises(SystemExit, match="PARLEY_RUNNER_NAME: at most 100 characters"):
            load_settings(
                embedded=False, environ={"PARLEY_RUNNER_NAME": name}, require_secrets=False
            )
