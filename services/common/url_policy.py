"""Which MCP URLs Parley may connect to: the one policy the API and the tool router share.

- http or https only, with a host;
- link-local (169.254.0.0/16, fe80::/10) and cloud-metadata addresses: never;
- loopback, private, unique-local, unspecified and other non-global addresses: only when the
  installation allows private networks (PARLEY_MCP_ALLOW_PRIVATE_NETWORKS);
- multicast: never.

An address is judged by where packets to it go: an IPv6 address that carries an IPv4 one
(mapped, compatible, SIIT, NAT64, 6to4, Teredo) by that IPv4 address, and a host spelled as
an IPv4 number the way inet_aton reads it (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) as
that address. `check_literal` judges the URL text (no DNS; the API's synchronous validation);
`check_resolved` every address the host resolves to; `address_refusal` one address (the tool
router's HTTP pool asks it for each address it is about to connect to, so a name that resolves
elsewhere after the check, DNS rebinding, is refused too).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Never allowed, whatever the installation says.
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
_METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud
)
_LOCALHOST_NAMES = ("localhost", "localhost.localdomain")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_LOW_32_PREFIXES = frozenset({0, 0xFFFF0000, int(ipaddress.ip_address("64:ff9b::")) >> 32})
_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}
# Characters that may appear in a URL's host (RFC 3986 reg-name, IP literals, percent-escapes).
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:[]")


class UrlNotAllowed(ValueError):
    """The URL breaks the policy; `reason` says why in words fit for an error detail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split(url: str) -> SplitResult:
    """The URL's parts, or UrlNotAllowed when it is not an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise UrlNotAllowed("it is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlNotAllowed("it must be an absolute http or https URL")
    if not set(parts.hostname) <= _HOST_CHARS:  # resolvers read "1.2.3.4 x" as 1.2.3.4
        raise UrlNotAllowed("its host holds characters a host name cannot have")
    return parts


def parse_address(host: str) -> IPAddress | None:
    """The address a host spells, IPv4 numbers in any inet_aton form included; None for a
    name. A trailing dot and an IPv6 zone (`%eth0`) are dropped."""
    host = host.rstrip(".").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return parse_ipv4_number(host)


def parse_ipv4_number(text: str) -> ipaddress.IPv4Address | None:
    """inet_aton's reading of `text`: one to four dot-separated parts, each decimal, octal
    (leading 0) or hex (0x); the last part fills the bytes left. None when it is not one."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        lower = part.lower()
        if lower.startswith("0x"):
            digits, base = lower[2:], 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        if not digits or not all(c in _DIGITS[base] for c in digits):
            return None
        values.append(int(digits, base))
    *leading, last = values
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    number = last
    for i, value in enumerate(leading):
        number |= value << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address leads to: mapped (::ffff:a.b.c.d), compatible
    (::a.b.c.d), SIIT (::ffff:0:a.b.c.d), NAT64 (64:ff9b::/96; 64:ff9b:1::/48 at each RFC 6052
    prefix length it allows), 6to4 (2002::/16) and Teredo (2001::/32: server and client)."""
    value = int(address)
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    if value >> 32 in _LOW_32_PREFIXES and value > 1:  # ::/96 but :: and ::1, SIIT, NAT64
        return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if address in _NAT64_LOCAL:
        return tuple(
            dict.fromkeys(ipaddress.IPv4Address(_rfc6052(value, n)) for n in (48, 56, 64, 96))
        )
    return ()


def _rfc6052(value: int, prefix_length: int) -> int:
    """The IPv4 address at RFC 6052's place for this prefix length (bits 64-71 are skipped)."""

    def bits(start: int, count: int) -> int:
        return (value >> (128 - start - count)) & ((1 << count) - 1)

    if prefix_length == 96:
        return bits(96, 32)
    if prefix_length == 64:
        return bits(72, 32)
    before = 64 - prefix_length  # bits of the address before the skipped octet
    return bits(prefix_length, before) << (32 - before) | bits(72, 32 - before)


def address_refusal(address: IPAddress, allow_private_networks: bool) -> str | None:
    """Why this address may not be connected to, or None when it may. An IPv6 address that
    carries IPv4 ones is judged by them: that is where its packets go."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = embedded_ipv4(address)
        for inner in carried:
            why = _refusal(inner, allow_private_networks)
            if why is not None:
                return f"{why} (carried by {address})"
        if carried:
            return None
    return _refusal(address, allow_private_networks)


def _refusal(address: IPAddress, allow_private_networks: bool) -> str | None:
    if any(address in net for net in _METADATA if net.version == address.version):
        return f"{address} is a cloud-metadata address, which is never allowed"
    if any(address in net for net in _LINK_LOCAL if net.version == address.version):
        return f"{address} is link-local, which is never allowed"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if not allow_private_networks and not address.is_global:
        return (
            f"{address} is a loopback, private or reserved address, "
            "which this installation does not allow"
        )
    return None


def check_literal(url: str, allow_private_networks: bool) -> SplitResult:
    """Scheme, literal IP addresses and `localhost` names, without DNS; host names pass."""
    parts = split(url)
    host = (parts.hostname or "").rstrip(".").lower()
    address = parse_address(host)
    if address is None:
        if not allow_private_networks and (host in _LOCALHOST_NAMES or host.endswith(".localhost")):
            raise UrlNotAllowed("loopback addresses are not allowed on this installation")
        return parts
    why = address_refusal(address, allow_private_networks)
    if why is not None:
        raise UrlNotAllowed(why)
    return parts


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, without blocking the event loop."""
    address = parse_address(host)
    if address is not None:
        return [address]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlNotAllowed(f"its host `{host}` does not resolve ({exc.strerror})") from None
    return list(dict.fromkeys(a for a in (parse_address(str(i[4][0])) for i in infos) if a))


async def check_resolved(url: str, allow_private_networks: bool) -> list[IPAddress]:
    """The literal checks, then every resolved address; a name resolving to any refused
    address is refused (an attacker controls which of its records a client picks)."""
    parts = check_literal(url, allow_private_networks)
    host = (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    _refuse_any(host, addresses, allow_private_networks)
    return addresses


async def check_known_addresses(
    url: str, allow_private_networks: bool, timeout_s: float = 2.0
) -> None:
    """For synchronous validation (conversation creation, run start): refuse a host whose
    addresses are known to be refused. A host that does not resolve (yet), or not in time,
    passes: the tool router checks the resolved addresses again before every connection."""
    parts = check_literal(url, allow_private_networks)
    host = (parts.hostname or "").rstrip(".")
    try:
        addresses = await asyncio.wait_for(resolve(host, parts.port or 443), timeout_s)
    except (UrlNotAllowed, TimeoutError):
        return
    _refuse_any(host, addresses, allow_private_networks)


def _refuse_any(host: str, addresses: list[IPAddress], allow_private_networks: bool) -> None:
    """UrlNotAllowed when any address `host` resolved to is refused."""
    for address in addresses:
        why = address_refusal(address, allow_private_networks)
        if why is not None:
            raise UrlNotAllowed(f"its host `{host}` resolves to {why}")


def normalize(url: str) -> str:
    """A comparable form for allowlist matching: lower-case scheme and host, default port
    dropped, empty path as "/", no fragment. Unparseable URLs come back unchanged."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url
    host = (parts.hostname or "").rstrip(".").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port is None or port == default else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = f"{parts.username or ''}:{parts.password or ''}@{netloc}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{netloc}{path}{query}"
