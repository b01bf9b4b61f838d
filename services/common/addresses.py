"""Address settings (PARLEY_API_ADDR, PARLEY_STORE_ADDR, PARLEY_RUNNER_ADDR, PARLEY_TOOLING_ADDR):
one `host:port`, several IP addresses separated by commas, or a `dns:///name:port` target whose
name resolves to several. Clients dial every address of the setting (channels.py); a process that
serves the service listens on the port of the first.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

SETTINGS = {
    "api_addr": "PARLEY_API_ADDR",
    "store_addr": "PARLEY_STORE_ADDR",
    "runner_addr": "PARLEY_RUNNER_ADDR",
    "tooling_addr": "PARLEY_TOOLING_ADDR",
}


@dataclass(frozen=True, slots=True)
class Addresses:
    first: str  # host:port of the first address (of a dns:/// target: its name and port)
    target: str  # the gRPC target that names them all

    @property
    def listed(self) -> bool:
        """Several addresses, named one by one (gRPC's ipv4: and ipv6: targets)."""
        return self.target.startswith(("ipv4:", "ipv6:"))

    @property
    def first_host(self) -> str:
        return self.first.rpartition(":")[0].strip("[]")

    @property
    def first_port(self) -> int:
        return int(self.first.rpartition(":")[2])


def parse(value: str, name: str = "the address") -> Addresses:
    """The setting `value` (named `name` in errors); ValueError says what is wrong with it."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{name} is empty: give host:port, a list of them, or dns:///name:port")
    if items[0].startswith("dns:"):
        if len(items) > 1:
            raise ValueError(f"{name}: a dns: target names one name (it may resolve to several)")
        rest = items[0].removeprefix("dns:")
        if rest.startswith("//"):  # dns://[authority]/name:port
            rest = rest[2:].partition("/")[2]
        return Addresses(_host_port(rest, name), items[0])
    for item in items:
        _host_port(item, name)
    if len(items) == 1:  # a name resolves through DNS, and may stand for several addresses
        return Addresses(items[0], items[0])
    families = {_ip_family(item, name) for item in items}
    if len(families) > 1:
        raise ValueError(f"{name}: list IPv4 or IPv6 addresses, not both")
    return Addresses(items[0], f"{families.pop()}:{','.join(items)}")


def _host_port(item: str, name: str) -> str:
    host, sep, port = item.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{name}: {item!r} is not host:port")
    return item


def _ip_family(item: str, name: str) -> str:
    host = item.rpartition(":")[0]
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(
            f"{name}: {item!r} in a list of addresses is not an IP address; list IP addresses "
            "(10.0.0.1:50051,10.0.0.2:50051), or give one dns:///name:port that resolves to them"
        ) from None
    if address.version == 6 and not host.startswith("["):
        raise ValueError(f"{name}: write an IPv6 address in brackets ([{host}]:port)")
    return "ipv4" if address.version == 4 else "ipv6"
