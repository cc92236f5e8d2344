"""Names with ``/`` in URL paths.

A queue or topic may be called ``a/b``; clients reach it as ``/v1/queues/a%2Fb``.
Servers decode ``%2F`` before routing, so the name would span two path segments and
match no route. :class:`EncodedSlashes` decodes the path again from the raw one,
segment by segment, with ``%`` and ``/`` inside a segment escaped again (``%25``,
``%2F``); :func:`path_params` takes the escapes back out.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["EncodedSlashes", "path_params"]

_ESCAPED = "postroom.escaped_path"


class EncodedSlashes:
    """ASGI middleware: keep ``%2F`` inside one path segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw and b"%2f" in raw.lower():
            text = raw.decode("utf-8", "replace").split("?", 1)[0]
            segments = (_escape(unquote(s)) for s in text.split("/"))
            scope = {**scope, "path": "/".join(segments), _ESCAPED: True}
        await self.app(scope, receive, send)


def path_params(request: Request) -> dict[str, str]:
    """The request's path parameters, with encoded slashes restored."""
    params = {k: str(v) for k, v in request.path_params.items()}
    if request.scope.get(_ESCAPED):
        return {k: unquote(v) for k, v in params.items()}
    return params


def _escape(segment: str) -> str:
    return segment.replace("%", "%25").replace("/", "%2F")
