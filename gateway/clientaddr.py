"""The client's address, for the limits kept per address (sign-ups, failed
logins).

Behind a proxy or an Ingress every request comes from the proxy's address,
so a limit kept by `request.remote` would be shared by every client. When
the gateway is told which proxies it sits behind (TRUSTED_PROXIES: addresses
or networks), a request from one of them is attributed to the address its
X-Forwarded-For names: walking the header from the right (the hop nearest to
the gateway), the first address that is not a trusted proxy. A request from
anywhere else is attributed to its own peer address, whatever it claims.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES entries as networks; a bad entry stops the gateway."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"TRUSTED_PROXIES: {value!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(out)


def _ip(value: str):
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


class ClientAddress:
    def __init__(self, trusted: Iterable[str]) -> None:
        self.trusted = parse_networks(trusted)

    def _is_trusted(self, ip) -> bool:
        return ip is not None and any(ip in net for net in self.trusted)

    def of(self, request: web.Request) -> str:
        peer = request.remote or "unknown"
        if not self.trusted or not self._is_trusted(_ip(peer)):
            return peer
        hops = ",".join(request.headers.getall("X-Forwarded-For", ())).split(",")
        nearest = peer
        for hop in reversed(hops):
            ip = _ip(hop)
            if ip is None:
                # Malformed: what is left of it is the client's to forge; the
                # last trusted hop is the best that can be said.
                return nearest
            if not self._is_trusted(ip):
                return str(ip)
            nearest = str(ip)
        return nearest
