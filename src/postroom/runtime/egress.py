"""The push egress policy: which addresses HTTP push deliveries may reach.

A push subscription names a URL; whoever may create subscriptions (an ``admin``
token of ``postroom serve``) could otherwise make the pusher POST to the cloud
metadata service, a database on the pusher's loopback, or any host of the
private network, and read the answers back from the dead letters (SSRF). So by
default a push may only reach **global unicast** addresses: loopback, private
(10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with
169.254.169.254, fe80::/10), shared (100.64/10), unspecified, multicast,
documentation and other reserved addresses are refused, also when an IPv6
address embeds one (``::ffff:127.0.0.1``, 6to4, NAT64).

An allow-list names what may be reached anyway: networks (``10.0.0.0/8``),
single addresses (``127.0.0.1``, ``::1``) or host names (``hooks.internal``,
matched exactly, case-insensitively, any port). It comes from
``postroom serve --push-allow``, ``postroom worker --push-allow`` or the
``POSTROOM_PUSH_ALLOW`` variable (entries separated by commas or spaces).

The check runs on the *resolved* address at delivery time: :class:`EgressTransport`
resolves the host, checks every address it resolves to, and connects to the
checked one (the ``Host`` header and TLS server name stay the URL's), so a DNS
answer that changes between the check and the connection cannot slip through.
``postroom serve`` also checks a new subscription's endpoint when it is created.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from ..model.errors import ConfigurationError

__all__ = [
    "ALLOW_ENV",
    "EgressPolicy",
    "EgressRefused",
    "EgressTransport",
    "describe_answer",
]

ALLOW_ENV = "POSTROOM_PUSH_ALLOW"
# Set on a request's extensions by EgressTransport: whether the target was named
# by the allow-list (a trusted target: its answers may be kept in dead letters).
ALLOW_LISTED = "postroom.allow_listed"
# How much of an allow-listed target's non-2xx answer a dead letter keeps.
EXCERPT_BYTES = 200
_RESOLVE_SECONDS = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


class EgressRefused(httpx.ConnectError):
    """A push target the egress policy does not allow (a failed attempt)."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a global unicast address (``None`` when it is)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            kind = address_kind(inner)
            return f"{kind} (embedded in {ip})" if kind else None
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for kind, hit in checks:
        if hit:
            return kind
    return None if ip.is_global else "non-global"


def _parse_entry(entry: str) -> IPNetwork | str:
    text = entry.strip().lower()
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        pass
    host = text.rstrip(".")
    if not _HOST.match(host):
        raise ConfigurationError(
            f"push allow-list entry {entry!r} is neither a network (10.0.0.0/8, "
            "::1), an address nor a host name (hooks.internal)"
        )
    return host


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Global unicast addresses, plus the networks and host names allowed here."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> EgressPolicy:
        """A policy from allow-list entries (a string splits on commas/spaces)."""
        if isinstance(entries, str):
            entries = re.split(r"[\s,]+", entries)
        parsed = [_parse_entry(e) for e in entries if e.strip()]
        nets = tuple(p for p in parsed if not isinstance(p, str))
        return cls(nets, frozenset(p for p in parsed if isinstance(p, str)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EgressPolicy:
        """The policy ``POSTROOM_PUSH_ALLOW`` describes (none: the default)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(ALLOW_ENV, ""))

    def with_entries(self, entries: Iterable[str]) -> EgressPolicy:
        """This policy with more allow-list entries."""
        more = EgressPolicy.parse(list(entries))
        return EgressPolicy(self.networks + more.networks, self.hosts | more.hosts)

    def names(self, host: str) -> bool:
        """Whether the allow-list names ``host`` (a host name or address)."""
        host = host.strip("[]").lower().rstrip(".")
        if host in self.hosts:
            return True
        try:
            return self._listed(ipaddress.ip_address(host))
        except ValueError:
            return False

    def _listed(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)

    def refusal(self, host: str, address: str) -> str | None:
        """Why a push to ``host`` at ``address`` is refused (``None``: allowed)."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if self._listed(ip):
            return None
        kind = address_kind(ip)
        if kind is None:
            return None
        shown = host if host.strip("[]") == str(ip) else f"{host} ({ip})"
        return (
            f"push target {shown} is a {kind} address, which push deliveries may "
            f"not reach unless allowed: add it with `--push-allow {ip}` (postroom "
            f"serve / worker) or {ALLOW_ENV}"
        )

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to; raises :class:`EgressRefused`
        when one of them is not allowed or the name does not resolve."""
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise EgressRefused(f"cannot resolve push target {host!r}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            reason = self.refusal(host, address)
            if reason is not None:
                raise EgressRefused(reason)
        return addresses

    async def check_endpoint(self, url: str) -> None:
        """Refuse, with a :class:`ConfigurationError`, an endpoint whose host
        resolves now to an address this policy does not allow.

        A host that does not resolve (yet) passes: delivery checks again.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        if not host or self.names(host):
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with anyio.move_on_after(_RESOLVE_SECONDS):
            try:
                await self.resolve(host, port)
            except EgressRefused as exc:
                if str(exc).startswith("cannot resolve"):
                    return
                raise ConfigurationError(str(exc)) from exc


class EgressTransport(httpx.AsyncBaseTransport):
    """An httpx transport that pushes only where ``policy`` allows.

    Each request's host is resolved and checked, then the connection goes to the
    checked address; a host named by the allow-list is connected to as is. Any
    other keyword arguments build the inner ``httpx.AsyncHTTPTransport``.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        inner: httpx.AsyncBaseTransport | None = None,
        **options: Any,
    ) -> None:
        self.policy = policy
        self._inner = inner or httpx.AsyncHTTPTransport(**options)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the target, then send through the inner transport."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise EgressRefused(f"push target {url} is not http(s)", request=request)
        host = url.raw_host.decode("ascii")
        named = self.policy.names(host)
        request.extensions = {**request.extensions, ALLOW_LISTED: named}
        if not named:
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                addresses = await self.policy.resolve(host, port)
            except EgressRefused as exc:
                raise EgressRefused(str(exc), request=request) from exc
            listed = any(self.policy.names(a.split("%", 1)[0]) for a in addresses)
            request.extensions[ALLOW_LISTED] = listed
            if addresses[0].split("%", 1)[0] != host.strip("[]"):
                # Connect to the address just checked; Host and SNI stay the name.
                request.extensions["sni_hostname"] = host
                request.url = url.copy_with(host=addresses[0])
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the inner transport's connections."""
        await self._inner.aclose()


def _printable(data: str, limit: int) -> str:
    out = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in data)
    return out[:limit]


def describe_answer(response: httpx.Response, head: bytes) -> str:
    """What a dead letter keeps of a non-2xx answer whose first bytes are ``head``.

    Always the status, the reason phrase and the body's length; the first
    :data:`EXCERPT_BYTES` of the body (control characters escaped) only when the
    target was named by the allow-list, so a push cannot read an internal
    service's answers back.
    """
    reason = _printable(response.reason_phrase, 64)
    declared = response.headers.get("content-length", "")
    if declared.isdigit():
        size = f"{declared} bytes"
    else:
        size = f"{len(head)}{'+' if len(head) >= EXCERPT_BYTES else ''} bytes"
    text = f"HTTP {response.status_code} {reason} ({size})"
    if response.request.extensions.get(ALLOW_LISTED):
        excerpt = head[:EXCERPT_BYTES].decode("utf-8", "replace")
        text += f": {_printable(excerpt, 4 * EXCERPT_BYTES)}"
    return text
