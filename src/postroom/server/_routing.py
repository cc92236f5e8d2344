"""Operations of the HTTP API: declared once, served by Starlette, described by
OpenAPI.

Each operation names its scope, the path parameter checked against the token's
queue patterns, its request and response models. One wrapper authenticates,
authorises, parses and validates the request, calls the handler and turns every
error into a problem document, so a bad request is always a 4xx.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..client.core import AsyncClient
from ..model.errors import (
    BackendError,
    ConfigurationError,
    DeadLetterNotFound,
    InvalidArgument,
    LeaseLost,
    NotSupported,
    QueueNotFound,
    SerializationError,
    SubscriptionNotFound,
)
from . import _json
from ._auth import Token, find_token
from ._paths import path_params
from ._receipts import InvalidReceipt
from ._responses import AsciiJSONResponse

__all__ = ["Api", "Ctx", "HttpProblem", "Operation", "Settings", "problem_response"]

log = logging.getLogger(__name__)

Scope = Literal["send", "receive", "admin", "any", "public"]
Handler = Callable[["Ctx", Any], Awaitable[BaseModel]]
H = TypeVar("H", bound=Callable[..., Awaitable[BaseModel]])

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class HttpProblem(Exception):
    """An error answered with a problem document."""

    def __init__(self, status: int, detail: str, kind: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or _TITLES.get(status, "Error").lower().replace(" ", "-")


def problem_response(
    status: int,
    detail: str,
    kind: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A ``application/problem+json`` response."""
    title = _TITLES.get(status, "Error")
    kind = kind or title.lower().replace(" ", "-")
    doc = {"type": f"urn:postroom:problem:{kind}", "title": title}
    doc.update({"status": status, "detail": detail})  # type: ignore[dict-item]
    return AsciiJSONResponse(
        doc, status_code=status, headers=headers, media_type="application/problem+json"
    )


@dataclass(slots=True)
class Settings:
    """Server settings shared by every request."""

    tokens: list[Token] = field(default_factory=list)
    max_body_bytes: int = 256 * 1024
    max_batch: int = 100

    @property
    def open(self) -> bool:
        """No tokens: every request is allowed (the server only binds loopback)."""
        return not self.tokens


@dataclass(slots=True)
class Ctx:
    """What a handler gets: the client, settings, the caller's token, path params."""

    client: AsyncClient
    settings: Settings
    token: Token | None
    params: dict[str, str]
    state: Any
    request: Request | None = None

    def visible(self, name: str) -> bool:
        """Whether the caller's token covers the queue or topic ``name``."""
        return self.token is None or self.token.matches(name)

    def can(self, scope: str) -> bool:
        """Whether the caller has ``scope`` (always, on an open server)."""
        return self.token is None or self.token.allows(scope, None)


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: method, path, access rule, models and handler."""

    method: str
    path: str
    name: str
    summary: str
    tag: str
    scope: Scope
    resource: str | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel]
    status: int
    handler: Handler
    errors: tuple[int, ...] = ()


class Api:
    """A registry of operations; ``routes()`` serves them, OpenAPI describes them."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def op(
        self,
        method: str,
        path: str,
        *,
        scope: Scope,
        response: type[BaseModel],
        tag: str,
        resource: str | None = "queue",
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
    ) -> Callable[[H], H]:
        """Register the decorated handler as an operation."""

        def register(handler: H) -> H:
            doc = summary(handler.__doc__ or handler.__name__)
            self.operations.append(
                Operation(
                    method, path, handler.__name__.strip("_"), doc, tag, scope,
                    resource, body, query, response, status, handler, errors,
                )
            )  # fmt: skip
            return handler

        return register

    def routes(self) -> list[Route]:
        """Starlette routes, one per path, dispatching by method."""
        by_path: dict[str, dict[str, Operation]] = {}
        for op in self.operations:
            by_path.setdefault(op.path, {})[op.method] = op
        return [
            Route(path, _endpoint(ops), methods=list(ops))
            for path, ops in by_path.items()
        ]


def summary(docstring: str) -> str:
    """An operation's summary: the docstring's first paragraph on one line, its
    reStructuredText literals (````x````) as Markdown code spans (```x```)."""
    paragraph = docstring.strip().split("\n\n", 1)[0]
    return re.sub(r"``(.+?)``", r"`\1`", " ".join(paragraph.split()))


def _header_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def bearer(request: Request) -> str | None:
    """The bearer token of a request (header), else the dashboard cookie."""
    return _header_token(request) or request.cookies.get("postroom_token") or None


def same_origin(request: Request) -> bool:
    """Whether the request's ``Origin`` is this server (hosts compared: behind
    a TLS-terminating proxy the scheme differs); ``null`` never is."""
    origin = request.headers.get("origin", "")
    netloc = urlsplit(origin).netloc if "://" in origin else ""
    return bool(netloc) and netloc.lower() == request.headers.get("host", "").lower()


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def check_cross_site(request: Request, settings: Settings) -> None:
    """Refuse a state-changing request another web site's page could have sent.

    A browser always sends ``Origin`` with such requests, other clients seldom
    do. So: on an open server, a foreign ``Origin`` is refused; a request
    authorised by the dashboard's cookie (which only browsers hold) needs this
    server's own ``Origin``. A bearer header cannot be sent cross-site without
    a CORS preflight, which this server never grants.
    """
    if request.method in _SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    by_cookie = not settings.open and _header_token(request) is None
    if (origin is not None or by_cookie) and not same_origin(request):
        raise HttpProblem(
            403,
            f"cross-site request refused: Origin {origin!r} is not this server; "
            "send the request from a program, or with 'Authorization: Bearer'",
            "cross-site",
        )


def authenticate(request: Request, settings: Settings) -> Token | None:
    """The caller's token; raises 401 when tokens are configured and it is bad."""
    if settings.open:
        return None
    presented = bearer(request)
    if presented is None:
        raise HttpProblem(
            401,
            "this server needs a bearer token: send 'Authorization: Bearer <token>'",
        )
    token = find_token(settings.tokens, presented)
    if token is None:
        raise HttpProblem(401, "the bearer token is not valid")
    return token


def authorize(token: Token | None, scope: Scope, name: str | None) -> None:
    """Raise 403 unless ``token`` grants ``scope`` on ``name``."""
    if token is None or scope in ("any", "public"):
        if token is not None and name is not None and not token.matches(name):
            raise HttpProblem(403, f"this token does not cover {name!r}")
        return
    if not token.allows(scope, None):
        raise HttpProblem(403, f"this operation needs the {scope!r} scope")
    if name is not None and not token.matches(name):
        raise HttpProblem(
            403,
            f"this token's queue patterns {list(token.queues)} do not cover {name!r}",
        )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    """Read and validate a JSON body: present, declared as JSON, strict JSON,
    numbers as numbers (no ``"delay": false``, see :mod:`._types`)."""
    raw = await request.body()
    if not raw.strip():
        raise HttpProblem(
            400,
            "this operation needs a JSON request body (an empty one is not read "
            "as {}): see /openapi.json",
            "body-required",
        )
    if not _is_json(request.headers.get("content-type", "")):
        raise HttpProblem(
            415, "send the body as JSON with 'Content-Type: application/json'"
        )
    try:
        data = _json.loads(raw)
    except _json.InvalidJson as exc:
        raise HttpProblem(400, str(exc), "invalid-json") from exc
    return model.model_validate(data)


def _validation_detail(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "invalid request: " + "; ".join(parts)


_NOT_FOUND = (QueueNotFound, DeadLetterNotFound, SubscriptionNotFound)
_BAD_INPUT = (InvalidReceipt, ConfigurationError, SerializationError, ValueError)


def error_response(exc: Exception) -> Response:
    """The problem document for an exception raised while serving a request."""
    if isinstance(exc, HttpProblem):
        return problem_response(exc.status, exc.detail, exc.kind)
    if isinstance(exc, pydantic.ValidationError):
        return problem_response(422, _validation_detail(exc), "invalid-request")
    if isinstance(exc, _NOT_FOUND):
        return problem_response(404, str(exc), "not-found")
    if isinstance(exc, LeaseLost):
        return problem_response(409, str(exc), "lease-lost")
    if isinstance(exc, InvalidArgument):  # names the argument and the range
        return problem_response(400, str(exc), "invalid-argument")
    if isinstance(exc, _BAD_INPUT):
        return problem_response(400, str(exc), "bad-request")
    if isinstance(exc, NotSupported):
        return problem_response(501, str(exc), "not-supported")
    if isinstance(exc, BackendError):
        log.warning("backend error: %s", exc)
        return problem_response(503, str(exc), "backend-unavailable")
    log.exception("unexpected error while serving a request")
    return problem_response(500, "internal error: see the server log", "internal")


def _endpoint(ops: dict[str, Operation]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        op = ops.get(request.method) or ops["GET"]  # Starlette adds HEAD to GET
        try:
            return await _serve(op, request)
        except Exception as exc:
            return error_response(exc)

    return endpoint


async def _serve(op: Operation, request: Request) -> Response:
    app_state = request.app.state
    settings: Settings = app_state.settings
    token = None if op.scope == "public" else authenticate(request, settings)
    params = path_params(request)
    authorize(token, op.scope, params.get(op.resource) if op.resource else None)
    check_cross_site(request, settings)
    arg: BaseModel | None = None
    if op.body is not None:
        arg = await parse_body(request, op.body)
    elif op.query is not None:
        arg = op.query.model_validate(dict(request.query_params))
    ctx = Ctx(app_state.client, settings, token, params, app_state, request)
    result = await op.handler(ctx, arg)
    return AsciiJSONResponse(result.model_dump(mode="json"), status_code=op.status)
