"""url_policy: the scheme and address rules, literal and resolved."""

from __future__ import annotations

import ipaddress

import pytest

from services.common import url_policy
from services.common.url_policy import UrlNotAllowed


@pytest.mark.parametrize(
    "url",
    [
        "ftp://a.test/mcp",
        "a.test/mcp",
        "/mcp",
        "http://a.test:99999/mcp",
        "http://169.254.169.254/latest",
        "http://169.254.1.1/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://224.0.0.1/",
    ],
)
def test_always_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        url_policy.check_literal(url, allow_private_networks=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/mcp",
        "http://10.1.2.3/mcp",
        "http://192.168.0.1/mcp",
        "http://[::1]/mcp",
        "http://[fd12::1]/mcp",
        "http://0.0.0.0/mcp",
        "http://localhost:9000/mcp",
        "http://api.localhost/mcp",
        "http://100.64.0.1/mcp",
    ],
)
def test_private_only_when_allowed(url: str) -> None:
    url_policy.check_literal(url, allow_private_networks=True)
    with pytest.raises(UrlNotAllowed):
        url_policy.check_literal(url, allow_private_networks=False)


def test_public_addresses_and_names_pass() -> None:
    url_policy.check_literal("https://mcp.narrative.io/mcp", allow_private_networks=False)
    url_policy.check_literal("http://8.8.8.8/mcp", allow_private_networks=False)
    assert url_policy.address_refusal(ipaddress.ip_address("1.1.1.1"), False) is None


async def test_resolved_names_are_judged_by_their_addresses() -> None:
    assert await url_policy.check_resolved("http://localhost:1/mcp", True)
    with pytest.raises(UrlNotAllowed) as info:
        await url_policy.check_resolved("http://localhost:1/mcp", False)
    assert "loopback" in info.value.reason
    with pytest.raises(UrlNotAllowed):
        await url_policy.check_resolved("http://127.0.0.1:1/mcp", False)


def test_normalize_for_the_allowlist() -> None:
    n = url_policy.normalize
    assert n("HTTPS://MCP.Narrative.io:443/mcp") == n("https://mcp.narrative.io/mcp")
    assert n("http://a.test") == "http://a.test/"
    assert n("http://a.test:8080/x") != n("http://a.test/x")
    assert n("https://a.test/mcp") != n("https://a.test/mcp/other")
