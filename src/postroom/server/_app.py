"""``create_app``: the ASGI application of ``postroom serve``."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files

import anyio
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..client.core import AsyncClient
from ..model import tracing
from ..runtime.egress import EgressPolicy
from ..runtime.sampler import Sampler
from . import (
    _admin,  # noqa: F401 - registers the admin operations
    _workers,  # noqa: F401 - registers GET /v1/workers
    sqs,
)
from ._api import api
from ._auth import Token
from ._dashboard import dashboard_routes
from ._guard import Guard, default_hosts
from ._metrics import CONTENT_TYPE, Metrics
from ._openapi import openapi_document
from ._paths import EncodedSlashes
from ._responses import AsciiJSONResponse
from ._routing import HttpProblem, Settings, authenticate, problem_response

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_PACKAGE = files("postroom.server")


class BodyLimit:
    """Answer 413 to request bodies over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > self.limit
        ):
            await self._too_large(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HttpProblem(413, self._detail())
            return message

        await self.app(scope, limited, send)

    def _detail(self) -> str:
        return (
            f"the request body is larger than {self.limit} bytes: send smaller "
            "messages (put large payloads in object storage and send a reference)"
        )

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = dict(scope["headers"]).get(b"x-amz-target")
        if target is not None:  # an SQS call: answer in SQS's terms
            answer = sqs.too_large(target.decode("latin-1"), self._detail())
            await answer(scope, receive, send)
            return
        await problem_response(413, self._detail())(scope, receive, send)


class TraceContext:
    """Continue the trace of a request that carries a W3C ``traceparent`` header:
    the spans of a send or publish through the API join the caller's trace (see
    :func:`postroom.model.tracing.continued`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate")
        }
        with tracing.continued(carrier):
            await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HttpProblem):
        return problem_response(exc.status, exc.detail, exc.kind)
    assert isinstance(exc, HTTPException)
    return problem_response(
        exc.status_code, exc.detail or "error", headers=dict(exc.headers or {})
    )


def _meta_routes(secured: bool) -> list[BaseRoute]:
    templates = Jinja2Templates(directory=str(_PACKAGE / "templates"))
    templates.env.filters["code_spans"] = code_spans
    # Built at the first request: the name patterns take a scan of Unicode.
    document = functools.cache(
        functools.partial(openapi_document, api.operations, secured=secured)
    )

    async def openapi(request: Request) -> Response:
        return AsciiJSONResponse(await anyio.to_thread.run_sync(document))

    async def docs(request: Request) -> Response:
        return templates.TemplateResponse(
            request, "docs.html", {"ops": api.operations, "secured": secured}
        )

    async def metrics(request: Request) -> Response:
        token = authenticate(request, request.app.state.settings)
        visible = token.matches if token is not None else None
        body = await request.app.state.metrics.render(request.app.state.client, visible)
        return Response(body, media_type=CONTENT_TYPE)

    return [
        Route("/openapi.json", openapi),
        Route("/docs", docs),
        Route("/metrics", metrics),
    ]


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    state = app.state
    client: AsyncClient = state.client
    await client.connect()
    try:
        async with anyio.create_task_group() as tg:
            stop = anyio.Event()
            # HTTP consumers' durations reach the backend about once a second.
            tg.start_soon(state.metrics.recorder.run, client, stop)
            # Samples for the charts (the backend keeps the first per bucket).
            tg.start_soon(state.sampler.run, client, stop)
            if state.push:
                from ..runtime.push import run_pusher

                run = functools.partial(run_pusher, client, egress=state.egress)
                tg.start_soon(functools.partial(run, stop=stop))
                log.info("push delivery started")
            yield
            stop.set()
    finally:
        if state.owns_client:
            await client.aclose()


def code_spans(text: str) -> Markup:
    """``text`` as HTML with its Markdown code spans (```x```) as ``<code>``."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def create_app(
    url: str | None = None,
    *,
    tokens: Sequence[Token] = (),
    client: AsyncClient | None = None,
    push: bool = True,
    max_body_bytes: int = 256 * 1024,
    max_batch: int = 100,
    egress: EgressPolicy | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The ASGI app serving the HTTP API, dashboard, ``/metrics`` and ``/healthz``.

    ``url`` picks the backend (else ``POSTROOM_URL``, else the SQLite default);
    pass ``client`` to share an :class:`AsyncClient` (it is then not closed).
    Without ``tokens`` every request is allowed: listen on loopback only (see
    :func:`postroom.server.check_bind`). ``push`` runs the HTTP push pusher,
    which reaches the addresses ``egress`` allows (default: the policy of
    ``POSTROOM_PUSH_ALLOW``); new push subscriptions are checked against it too.
    ``allowed_hosts`` are the ``Host`` names answered (default: the loopback
    names without tokens, any with tokens); see ``docs/security.md``.
    """
    settings = Settings(
        list(tokens), max_body_bytes=max_body_bytes, max_batch=max_batch
    )
    routes: list[BaseRoute] = [
        *sqs.routes(),  # POST / with X-Amz-Target: the SQS-compatible endpoint
        *api.routes(),
        *_meta_routes(secured=not settings.open),
        *dashboard_routes(),
        Mount(
            "/static", StaticFiles(directory=str(_PACKAGE / "static")), name="static"
        ),
    ]
    app = Starlette(
        routes=routes,
        lifespan=_lifespan,
        middleware=[
            Middleware(Guard, hosts=_hosts(allowed_hosts, settings)),
            Middleware(BodyLimit, limit=max_body_bytes),
            Middleware(TraceContext),
            Middleware(EncodedSlashes),
        ],
        exception_handlers={HTTPException: _http_error, HttpProblem: _http_error},
    )
    app.state.settings = settings
    app.state.client = client or AsyncClient(url)
    app.state.owns_client = client is None
    app.state.metrics = Metrics()
    app.state.sampler = Sampler()
    app.state.push = push
    app.state.sqs = sqs.new_state()
    app.state.egress = egress if egress is not None else EgressPolicy.from_env()
    return app


def _hosts(given: Sequence[str] | None, settings: Settings) -> list[str] | None:
    if given is not None:
        return list(given)
    return default_hosts() if settings.open else None
