"""url_policy: the scheme and address rules, literal and resolved."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# --- every spelling of an address is judged as that address ------------------------------------

METADATA_SPELLINGS = [
    "http://[::169.254.169.254]/mcp",  # IPv4-compatible
    "http://[::ffff:169.254.169.254]/mcp",  # mapped
    "http://[::ffff:0:169.254.169.254]/mcp",  # SIIT
    "http://[64:ff9b::169.254.169.254]/mcp",  # NAT64, well-known prefix
    "http://[64:ff9b:1::a9fe:a9fe]/mcp",  # NAT64, local-use prefix (/96 layout)
    "http://[64:ff9b:1:a9fe:a9:fe00::]/mcp",  # NAT64, local-use prefix (/48 layout)
    "http://[2002:a9fe:a9fe::1]/mcp",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/mcp",  # Teredo, client 169.254.169.254
    "http://2852039166/mcp",  # decimal
    "http://0251.0376.0251.0376/mcp",  # octal
    "http://0xa9.0xfe.0xa9.0xfe/mcp",  # hex
    "http://0xa9fea9fe/mcp",
    "http://169.254.43518/mcp",  # short forms
    "http://169.16689662/mcp",
    "http://169.254.169.254./mcp",
    "http://[fd00:ec2::254]/mcp",
    "http://[fe80::1%25eth0]/mcp",
]

LOOPBACK_SPELLINGS = [
    "http://2130706433/mcp",
    "http://0177.0.0.1/mcp",
    "http://0x7f.0.0.1/mcp",
    "http://0x7f000001/mcp",
    "http://127.1/mcp",
    "http://0/mcp",
    "http://[::127.0.0.1]/mcp",
    "http://[::ffff:127.0.0.1]/mcp",
    "http://[::ffff:0:127.0.0.1]/mcp",
    "http://[64:ff9b::127.0.0.1]/mcp",
    "http://[64:ff9b::10.0.0.1]/mcp",
    "http://[2002:7f00:1::]/mcp",
    "http://[2002:c0a8:101::]/mcp",  # 6to4 of 192.168.1.1
]


@pytest.mark.parametrize("url", METADATA_SPELLINGS)
def test_metadata_and_link_local_in_any_spelling_are_always_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed) as refused:
        url_policy.check_literal(url, allow_private_networks=True)
    assert "never allowed" in refused.value.reason


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
def test_private_addresses_in_any_spelling_need_private_networks(url: str) -> None:
    url_policy.check_literal(url, allow_private_networks=True)
    with pytest.raises(UrlNotAllowed):
        url_policy.check_literal(url, allow_private_networks=False)


@pytest.mark.parametrize(
    "url",
    ["http://[64:ff9b::8.8.8.8]/mcp", "http://[2002:808:808::1]/mcp", "http://134744072/mcp"],
)
def test_an_embedded_public_address_is_public(url: str) -> None:
    url_policy.check_literal(url, allow_private_networks=False)


@pytest.mark.parametrize("host", ["1.2.3.4 x", "a b.test"])
def test_a_host_with_characters_no_host_has_is_refused(host: str) -> None:
    with pytest.raises(UrlNotAllowed):
        url_policy.check_literal(f"http://{host}/mcp", allow_private_networks=True)


async def test_resolving_a_numeric_spelling_judges_its_address() -> None:
    with pytest.raises(UrlNotAllowed):
        await url_policy.check_resolved("http://0x7f.1:1/mcp", False)
    assert await url_policy.check_resolved("http://0x7f.1:1/mcp", True) == [
        ipaddress.ip_address("127.0.0.1")
    ]


# Hypothesis: parse_ipv4_number reads every spelling as inet_aton does, and every IPv6 form
# of a refused IPv4 address is refused the same way.

_PART = st.sampled_from(["dec", "oct", "hex"])


def _spell(value: int, style: str) -> str:
    return {"dec": str(value), "oct": "0" + format(value, "o"), "hex": hex(value)}[style]


@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.lists(_PART, min_size=4, max_size=4))
def test_every_inet_aton_spelling_reads_as_its_address(
    number: int, parts: int, styles: list[str]
) -> None:
    octets = number.to_bytes(4, "big")
    values = [*octets[: parts - 1], int.from_bytes(octets[parts - 1 :], "big")]
    text = ".".join(_spell(v, s) for v, s in zip(values, styles, strict=False))
    assert url_policy.parse_ipv4_number(text) == ipaddress.IPv4Address(number)
    assert socket.inet_aton(text) == octets  # the C library agrees


@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_the_parser_agrees_with_inet_aton_on_any_text(text: str) -> None:
    try:
        expected: ipaddress.IPv4Address | None = ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        expected = None
    assert url_policy.parse_ipv4_number(text) == expected


_REFUSED_V4 = st.one_of(
    st.integers(0, 2**16 - 1).map(lambda n: ipaddress.IPv4Address((169 << 24) | (254 << 16) | n)),
    st.just(ipaddress.IPv4Address("100.100.100.200")),
)


@given(_REFUSED_V4)
def test_every_ipv6_form_of_a_link_local_address_is_refused(v4: ipaddress.IPv4Address) -> None:
    n = int(v4)
    forms = [
        n,  # ::a.b.c.d
        0xFFFF << 32 | n,  # ::ffff:a.b.c.d
        0xFFFF0000 << 32 | n,  # ::ffff:0:a.b.c.d
        int(ipaddress.IPv6Address("64:ff9b::")) | n,
        int(ipaddress.IPv6Address("64:ff9b:1::")) | n,
        int(ipaddress.IPv6Address("2002::")) | n << 80,
        int(ipaddress.IPv6Address("2001::")) | (n ^ 0xFFFFFFFF),  # Teredo obfuscates the client
    ]
    for form in forms:
        address = ipaddress.IPv6Address(form)
        why = url_policy.address_refusal(address, allow_private_networks=True)
        assert why is not None and str(v4) in why, (address, why)
