"""Which MCP URLs Parley may connect to: the one policy the API and the tool router share.

- http or https only, with a host;
- link-local (169.254.0.0/16, fe80::/10) and cloud-metadata addresses: never;
- loopback, private, unique-local, unspecified and other non-global addresses: only when the
  installation allows private networks (PARLEY_MCP_ALLOW_PRIVATE_NETWORKS);
- multicast: never.

`check_literal` judges the URL text only (no DNS; the API's synchronous validation uses it).
`check_resolved` resolves the host without blocking the loop and judges every address it
resolves to (the tool router, before connecting and for every request, redirects included).
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
    return parts


def address_refusal(address: IPAddress, allow_private_networks: bool) -> str | None:
    """Why this address may not be connected to, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not allow_private_networks and (host in _LOCALHOST_NAMES or host.endswith(".localhost")):
            raise UrlNotAllowed("loopback addresses are not allowed on this installation") from None
        return parts
    why = address_refusal(address, allow_private_networks)
    if why is not None:
        raise UrlNotAllowed(why)
    return parts


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, without blocking the event loop."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UrlNotAllowed(f"its host `{host}` does not resolve ({exc.strerror})") from None
    # Drop an IPv6 scope id ("fe80::1%eth0") before parsing.
    return list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))


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
