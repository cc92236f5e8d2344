"""The dashboard's forms that add things: send a message, publish an event,
create and delete a subscription, and the topic page that holds the last three.

Each form is a same-origin POST checked like the dashboard's other forms
(admin token in the cookie, ``Origin`` refused when foreign, the token's queue
patterns applied to the queue or topic), answered with a redirect that carries
a one-line notice. A failed send or create (a body that is not JSON, an endpoint
the egress policy refuses) changes nothing and says why in the notice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..model.errors import PostroomError
from ..model.signing import validate_endpoint
from . import _json
from ._dashboard import check_origin, dashboard_ctx, page
from ._routing import Ctx, HttpProblem

__all__ = ["form_routes"]


def _back(path: str, notice: str, *, bad: bool = False) -> Response:
    query = {"notice": notice, **({"bad": "1"} if bad else {})}
    return RedirectResponse(f"{path}?{urlencode(query)}", 303)


def _topic_path(topic: str) -> str:
    return f"/ui/topics/{quote(topic, safe='')}"


def _body(form: Any) -> Any:
    """The form's ``body`` field as a JSON value (refused when not JSON)."""
    text = str(form.get("body", "")).strip()
    if not text:
        raise ValueError('give a body: a JSON value such as {"image": "cat.png"}')
    try:
        return _json.loads(text.encode("utf-8"))
    except _json.InvalidJson as exc:
        raise ValueError(f"{exc}; nothing sent") from exc


def _topic_ctx(request: Request) -> Ctx:
    ctx = dashboard_ctx(request)
    topic = ctx.params["topic"]
    if not ctx.visible(topic):
        raise HttpProblem(403, f"this token's queue patterns do not cover {topic!r}")
    return ctx


async def _put_body(
    request: Request, ctx: Ctx, put: Callable[[str, Any], Awaitable[str]], done: str
) -> Response:
    """``put(name, body)`` with the form's JSON body, ``name`` being the queue or
    topic of the page; back to that page with the notice ``done`` and the new id,
    or why nothing was stored."""
    check_origin(request)
    kind = "queue" if "queue" in ctx.params else "topic"
    name = ctx.params[kind]
    path = f"/ui/{kind}s/{quote(name, safe='')}"
    try:
        new_id = await put(name, _body(await request.form()))
    except (ValueError, PostroomError) as exc:
        return _back(path, str(exc), bad=True)
    return _back(path, f"{done} {new_id}")


async def send_action(request: Request) -> Response:
    """Send one message (a JSON body) to the queue."""
    ctx = dashboard_ctx(request)
    return await _put_body(request, ctx, ctx.client.send, "sent message")


async def topic_page(request: Request) -> Response:
    """A topic: its subscriptions, a publish form, create and delete forms."""
    ctx = _topic_ctx(request)
    topic = ctx.params["topic"]
    subs = await ctx.client.subscriptions(topic)
    info = [t for t in await ctx.client.topics() if t.topic == topic]
    return page(
        request, "topic.html", topic=topic, subscriptions=subs,
        info=info[0] if info else None,
        notice=request.query_params.get("notice", ""),
        bad=request.query_params.get("bad") == "1",
    )  # fmt: skip


async def publish_action(request: Request) -> Response:
    """Publish one event (a JSON body) to the topic."""
    ctx = _topic_ctx(request)
    return await _put_body(request, ctx, ctx.client.publish, "published event")


async def create_action(request: Request) -> Response:
    """Create a subscription (pull, or push to an endpoint the egress policy
    allows); a push subscription's secret is shown once, in the notice."""
    ctx = _topic_ctx(request)
    check_origin(request)
    topic = ctx.params["topic"]
    form = await request.form()
    name = str(form.get("name", "")).strip()
    endpoint = str(form.get("push_endpoint", "")).strip() or None
    try:
        if endpoint is not None:
            validate_endpoint(endpoint)
            await ctx.state.egress.check_endpoint(endpoint)
        sub = await ctx.client.create_subscription(topic, name, push_endpoint=endpoint)
    except (ValueError, PostroomError) as exc:
        return _back(_topic_path(topic), str(exc), bad=True)
    notice = f"subscription {sub.name} of {topic}: queue {sub.queue}"
    if sub.push_endpoint:
        notice += f"; its secret (shown only now): {sub.secret}"
    return _back(_topic_path(topic), notice)


async def delete_action(request: Request) -> Response:
    """Delete a subscription with its queue and dead letters."""
    ctx = _topic_ctx(request)
    check_origin(request)
    topic, name = ctx.params["topic"], ctx.params["name"]
    await ctx.client.delete_subscription(topic, name)
    return _back(_topic_path(topic), f"deleted subscription {name}")


def form_routes(guard: Any) -> list[BaseRoute]:
    """The routes of these forms, each wrapped by the dashboard's ``guard``."""
    t = "/ui/topics/{topic}"
    return [
        Route("/ui/queues/{queue}/send", guard(send_action), methods=["POST"]),
        Route(t, guard(topic_page)),
        Route(t + "/publish", guard(publish_action), methods=["POST"]),
        Route(t + "/subscriptions", guard(create_action), methods=["POST"]),
        Route(
            t + "/subscriptions/{name}/delete", guard(delete_action), methods=["POST"]
        ),
    ]
