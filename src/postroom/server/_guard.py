"""What every request passes before routing, and what every answer carries.

- **Host allow-list.** A server without tokens trusts whoever reaches it, which
  loopback binding limits to this machine, unless a web page makes the
  operator's browser talk to it under another name (DNS rebinding: the page's
  own host name, re-pointed at 127.0.0.1). Such requests carry that foreign name
  in ``Host``, so an open server answers only to ``localhost``, ``127.0.0.1``,
  ``[::1]``, the host it is bound to and the names added with ``--allow-host``
  / ``POSTROOM_ALLOWED_HOSTS``. A server with tokens checks ``Host`` only when
  given a list.
- **Security headers** on every answer: no framing (``X-Frame-Options: DENY``,
  ``frame-ancestors 'none'``), a Content-Security-Policy that allows the
  dashboard's own script, styles and polling and nothing else, no MIME
  sniffing, and a referrer only to this server (``same-origin``: with
  ``no-referrer`` browsers would send ``Origin: null`` with the forms).

The Origin and Content-Type rules of ``/v1`` (CSRF) are in :mod:`._routing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._routing import problem_response

__all__ = ["SECURITY_HEADERS", "Guard", "default_hosts", "split_host"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "cross-origin-resource-policy": "same-origin",
}


def split_host(value: str) -> tuple[str, str | None]:
    """``(host, port)`` of a ``Host`` header or allow-list entry, lowercased;
    IPv6 addresses keep their brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value.partition("]")
        port = rest[1:] if rest.startswith(":") else None
        return host + "]", port or None
    host, sep, port = value.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        return (value if ":" not in value else f"[{value}]"), None
    return host, port or None


def default_hosts(host: str | None = None, port: int | None = None) -> list[str]:
    """The loopback names, plus ``host:port`` (the address the server binds)."""
    names = list(LOOPBACK_NAMES)
    if host:
        bound, _ = split_host(host)
        names.append(f"{bound}:{port}" if port else bound)
    return names


class _Hosts:
    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = {split_host(e) for e in entries if e.strip()}

    def allows(self, header: str) -> bool:
        host, port = split_host(header)
        return (host, None) in self.entries or (host, port) in self.entries


class Guard:
    """ASGI middleware: the Host allow-list, then security headers."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str] | None) -> None:
        self.app = app
        self.hosts = _Hosts(hosts) if hosts is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        if self.hosts is not None:
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not self.hosts.allows(header):
                detail = (
                    f"this server does not answer to Host {header!r}: use "
                    "http://127.0.0.1:<port>, or add the name with --allow-host "
                    "(POSTROOM_ALLOWED_HOSTS)"
                )
                await problem_response(400, detail, "host-not-allowed")(
                    scope, receive, secured
                )
                return
        await self.app(scope, receive, secured)
