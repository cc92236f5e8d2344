"""The web dashboard: server-rendered pages plus a small script polling depths.

Pages need the ``admin`` scope, and show only what the token's queue-name
patterns cover, as ``/v1`` does: other queues are not listed and their pages and
actions answer 403. A browser signs in once with its token, which is kept in an
``HttpOnly``, ``SameSite=Strict`` cookie; forms that change state also check the
``Origin`` header, so another site cannot submit them.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from ..client.core import AsyncClient
from ..model.errors import (
    DeadLetterNotFound,
    InvalidArgument,
    NotSupported,
    QueueNotFound,
    SubscriptionNotFound,
)
from ..model.message import DEAD_REASONS, DeadLetter, Message
from ..model.workers import HEARTBEAT_SECONDS
from . import _json
from ._api import queue_stats
from ._auth import find_token
from ._charts import charts
from ._format import when
from ._paths import path_params
from ._routing import Ctx, HttpProblem, Settings, bearer, same_origin
from ._tracebacks import fold_traceback
from ._workers import visible_workers

__all__ = ["dashboard_routes"]

COOKIE = "postroom_token"
_templates = Jinja2Templates(directory=str(files("postroom.server") / "templates"))


def _pretty(body: bytes) -> str:
    try:
        return json.dumps(_json.loads(body), indent=2, ensure_ascii=False)
    except _json.InvalidJson:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(body)} bytes of binary data>"


def _printable(value: Any) -> Any:
    """Every value a page shows, as valid Unicode (a lone surrogate stored
    through another path would fail the whole page)."""
    if isinstance(value, str) and not isinstance(value, Markup) and not value.isascii():
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


_templates.env.finalize = _printable
_templates.env.filters["when"] = when
_templates.env.filters["fold_traceback"] = fold_traceback
_templates.env.filters["pretty"] = _pretty
_templates.env.filters["q"] = lambda s: quote(str(s), safe="")


class _Login(Exception):
    """The browser has no admin token: send it to the sign-in page."""


def dashboard_ctx(request: Request) -> Ctx:
    """The caller's context, or :class:`_Login` when it holds no admin token;
    403 when a ``queue`` path parameter is outside the token's patterns."""
    settings: Settings = request.app.state.settings
    token = None
    if not settings.open:
        presented = bearer(request)
        token = find_token(settings.tokens, presented) if presented else None
        if token is None or not token.allows("admin", None):
            raise _Login()
    params = path_params(request)
    ctx = Ctx(request.app.state.client, settings, token, params, request.app.state)
    queue = params.get("queue")
    if queue is not None and not ctx.visible(queue):
        raise HttpProblem(403, f"this token's queue patterns do not cover {queue!r}")
    return ctx


def check_origin(request: Request) -> None:
    """Refuse a form posted from another origin."""
    if request.headers.get("origin") is not None and not same_origin(request):
        raise HttpProblem(403, "cross-site form submission refused", "cross-site")


def page(request: Request, name: str, **context: Any) -> Response:
    """Render a template with the dashboard's common context."""
    ctx = {"open": request.app.state.settings.open, **context}
    return _templates.TemplateResponse(request, name, ctx)


async def _overview(ctx: Ctx) -> dict[str, Any]:
    client: AsyncClient = ctx.client
    names = [n for n in await client.queues() if ctx.visible(n)]
    queues = await queue_stats(ctx, names)
    subs = [s for s in await client.subscriptions() if ctx.visible(s.topic)]
    topics = [t for t in await client.topics() if ctx.visible(t.topic)]
    return {
        "queues": [q.model_dump(mode="json") for q in queues],
        "topics": [
            {"topic": t.topic, "subscriptions": t.subscriptions,
             "published": t.published, "unrouted": t.unrouted}
            for t in topics
        ],
        "subscriptions": [s.to_dict(include_secret=False) for s in subs],
    }  # fmt: skip


async def index(request: Request) -> Response:
    """The overview: queues with their charts, topics, subscriptions."""
    ctx = dashboard_ctx(request)
    drawn = await charts(ctx, None)
    return page(request, "index.html", charts=drawn, **(await _overview(ctx)))


async def charts_fragment(request: Request) -> Response:
    """The charts of the overview (or of ``?queue=``), which the pages' script
    fetches again after each sampling step."""
    ctx = dashboard_ctx(request)
    queue = request.query_params.get("queue") or None
    if queue is not None and not ctx.visible(queue):
        raise HttpProblem(403, f"this token's queue patterns do not cover {queue!r}")
    return HTMLResponse(await charts(ctx, queue))


async def overview_json(request: Request) -> Response:
    """What the overview's script polls."""
    return JSONResponse(await _overview(dashboard_ctx(request)))


async def queue_page(request: Request) -> Response:
    """A queue: depths, policy, waiting messages and filtered dead letters."""
    ctx = dashboard_ctx(request)
    queue = ctx.params["queue"]
    client = ctx.client
    policy = await client.queue_policy(queue)
    [stats] = await queue_stats(ctx, [queue])
    reason = request.query_params.get("reason") or None
    if reason not in (None, *DEAD_REASONS):
        raise HttpProblem(400, f"unknown reason {reason!r}")
    contains = request.query_params.get("error_contains") or None
    dead: list[DeadLetter] = await client.dead_letters(
        queue, limit=200, reason=reason, error_contains=contains
    )
    waiting: list[Message] = await client.peek(queue, 20)
    drawn = await charts(ctx, queue)
    return page(
        request, "queue.html", queue=queue, stats=stats, policy=policy, dead=dead,
        charts=drawn,
        waiting=waiting, reasons=DEAD_REASONS, reason=reason or "",
        error_contains=contains or "", notice=request.query_params.get("notice", ""),
        bad=request.query_params.get("bad") == "1",
    )  # fmt: skip


async def dead_letter_page(request: Request) -> Response:
    """One dead letter: body, headers, error with traceback, attempt history."""
    ctx = dashboard_ctx(request)
    dl = await ctx.client.dead_letter(ctx.params["queue"], ctx.params["id"])
    return page(request, "dead_letter.html", queue=ctx.params["queue"], dl=dl)


async def workers_page(request: Request) -> Response:
    """The worker processes with their heartbeats (those consuming a queue the
    token covers)."""
    ctx = dashboard_ctx(request)
    try:
        workers = await visible_workers(ctx)
    except NotSupported as exc:
        return page(request, "workers.html", workers=[], unsupported=str(exc))
    return page(
        request, "workers.html", workers=workers, unsupported="",
        heartbeat=HEARTBEAT_SECONDS,
    )  # fmt: skip


def _back(queue: str, notice: str) -> Response:
    query = urlencode({"notice": notice})
    return RedirectResponse(f"/ui/queues/{quote(queue, safe='')}?{query}", 303)


async def redrive_action(request: Request) -> Response:
    """Redrive the selected dead letters (or all of them)."""
    ctx = dashboard_ctx(request)
    check_origin(request)
    form = await request.form()
    ids = [str(v) for v in form.getlist("id")]
    if not ids and form.get("all") != "1":
        return _back(ctx.params["queue"], "select the dead letters to redrive")
    moved = await ctx.client.redrive(ctx.params["queue"], ids=ids or None)
    return _back(ctx.params["queue"], f"redrove {len(moved)} message(s)")


async def purge_action(request: Request) -> Response:
    """Purge the queue's messages or its dead letters."""
    ctx = dashboard_ctx(request)
    check_origin(request)
    form = await request.form()
    if form.get("dead") not in ("0", "1"):
        raise HttpProblem(400, "say what to purge: dead=1 (dead letters) or dead=0")
    dead = form.get("dead") == "1"
    n = await ctx.client.purge(ctx.params["queue"], dead=dead)
    what = "dead letter(s)" if dead else "message(s)"
    return _back(ctx.params["queue"], f"purged {n} {what}")


async def login(request: Request) -> Response:
    """Sign in with an admin token (kept in an HttpOnly cookie)."""
    settings: Settings = request.app.state.settings
    if request.method == "GET":
        return page(request, "login.html", error="")
    check_origin(request)
    form = await request.form()
    value = str(form.get("token", ""))
    token = find_token(settings.tokens, value) if value else None
    if token is None or not token.allows("admin", None):
        refused = page(request, "login.html", error="not a valid admin token")
        refused.status_code = 401
        return refused
    resp = RedirectResponse("/", 303)
    resp.set_cookie(
        COOKIE, value, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return resp


def _guard(
    endpoint: Any,
) -> Any:
    async def guarded(request: Request) -> Response:
        try:
            response: Response = await endpoint(request)
        except _Login:
            if request.method == "GET" and not request.url.path.endswith(".json"):
                return RedirectResponse("/ui/login", 303)
            raise HttpProblem(401, "sign in with an admin token") from None
        except (QueueNotFound, DeadLetterNotFound, SubscriptionNotFound) as exc:
            raise HttpProblem(404, str(exc)) from exc
        except InvalidArgument as exc:  # e.g. a control character in the path
            raise HttpProblem(400, str(exc)) from exc
        return response

    return guarded


def dashboard_routes() -> list[BaseRoute]:
    """The dashboard's routes."""
    from ._forms import form_routes

    q = "/ui/queues/{queue}"
    return [
        Route("/", _guard(index)),
        Route("/ui/overview.json", _guard(overview_json)),
        Route("/ui/charts", _guard(charts_fragment)),
        Route("/ui/workers", _guard(workers_page)),
        Route(q, _guard(queue_page)),
        Route(q + "/dead/{id}", _guard(dead_letter_page)),
        Route(q + "/redrive", _guard(redrive_action), methods=["POST"]),
        Route(q + "/purge", _guard(purge_action), methods=["POST"]),
        Route("/ui/login", login, methods=["GET", "POST"]),
        *form_routes(_guard),
    ]
