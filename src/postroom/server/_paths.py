"""Names with ``/`` in URL paths.

A queue or topic may be called ``a/b``; clients reach it as ``/v1/queues/a%2Fb``.
Servers decode ``%2F`` before routing, so the name would span two path segments and
match no route. :class:`EncodedSlashes` decodes the path again from the raw one,
segment by segment, with each encoded slash as ``SLASH`` (a control character, which
no name may contain); :func:`path_params` turns it back into ``/``.
"""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["SLASH", "EncodedSlashes", "path_params"]

SLASH = "\x00"


class EncodedSlashes:
    """ASGI middleware: keep ``%2F`` inside one path segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw and b"%2f" in raw.lower():
            text = raw.decode("latin-1").split("?", 1)[0]
            segments = (unquote(s).replace("/", SLASH) for s in text.split("/"))
            scope = {**scope, "path": "/".join(segments)}
        await self.app(scope, receive, send)


def path_params(request: Request) -> dict[str, str]:
    """The request's path parameters, with encoded slashes restored."""
    return {k: str(v).replace(SLASH, "/") for k, v in request.path_params.items()}
