"""Typed sends: what ``@app.handler`` and ``@app.subscriber`` return.

A :class:`Handler` is still the decorated function (calling it calls the function)
and can send a body to its own queue (or publish it to its topic) after checking
the body against the function's annotated parameter type, so that a producer in
the same code base finds a wrong body at the call site, not in a dead letter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pydantic

from ..model.codec import _adapter
from ..model.errors import InvalidArgument
from ..model.message import Delivery, Message

if TYPE_CHECKING:
    from .app import App

__all__ = ["Handler", "check_body"]

B = TypeVar("B")
R = TypeVar("R")

# Annotations that take any body as it is.
_UNCHECKED: tuple[Any, ...] = (None, Any, Message, Delivery)


def check_body(body: Any, body_type: Any, where: str) -> Any:
    """``body`` validated as ``body_type`` (a pydantic model from a dict, ...).

    Raises :class:`InvalidArgument` naming ``where`` (the handler) and the type.
    """
    if any(body_type is t for t in _UNCHECKED):
        return body
    try:
        return _adapter(body_type).validate_python(body)
    except pydantic.ValidationError as exc:
        shown = getattr(body_type, "__name__", repr(body_type))
        raise InvalidArgument(
            f"body does not match the type {shown} that {where} takes: "
            f"{exc.errors()[0]['msg']} (at {exc.errors()[0]['loc'] or 'the body'}); "
            "send a value of that type"
        ) from exc


class Handler(Generic[B, R]):
    """A registered handler function, callable as before, with typed sends.

    ``send``/``send_async`` take :meth:`postroom.Client.send`'s options (``delay``,
    ``headers``, ``dedup_key``); for a subscriber they publish to its topic (only
    ``headers`` then). Both go through the App's client for its URL, created on
    first use and reused.
    """

    def __init__(
        self,
        func: Callable[[B], R],
        app: App,
        queue: str,
        body_type: Any,
        topic: str | None = None,
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.app = app
        self.queue = queue
        self.topic = topic
        self.body_type = body_type

    def __call__(self, body: B) -> R:
        return self.func(body)

    def _checked(self, body: Any) -> Any:
        return check_body(body, self.body_type, f"handler {self.func.__qualname__}")

    def send(
        self,
        body: B,
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        dedup_key: str | None = None,
        group: str | None = None,
        priority: int = 0,
    ) -> str:
        """Check ``body`` and send it to the handler's queue (publish it to the
        subscriber's topic); return the message id. ``group`` and ``priority``
        as in :meth:`AsyncClient.send <postroom.AsyncClient.send>`."""
        value = self._checked(body)
        client = self.app.client()
        if self.topic is not None:
            _only_headers(delay, dedup_key, group, priority)
            return client.publish(self.topic, value, headers=headers)
        return client.send(
            self.queue,
            value,
            delay=delay,
            headers=headers,
            dedup_key=dedup_key,
            group=group,
            priority=priority,
        )

    async def send_async(
        self,
        body: B,
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        dedup_key: str | None = None,
        group: str | None = None,
        priority: int = 0,
    ) -> str:
        """:meth:`send` through the App's :class:`~postroom.AsyncClient`."""
        value = self._checked(body)
        client = self.app.async_client()
        if self.topic is not None:
            _only_headers(delay, dedup_key, group, priority)
            return await client.publish(self.topic, value, headers=headers)
        return await client.send(
            self.queue,
            value,
            delay=delay,
            headers=headers,
            dedup_key=dedup_key,
            group=group,
            priority=priority,
        )


def _only_headers(delay: Any, dedup_key: Any, group: Any, priority: Any) -> None:
    if delay is not None or dedup_key is not None or group is not None or priority:
        raise InvalidArgument(
            "a subscriber's send publishes to its topic, which takes headers only: "
            "drop delay, dedup_key, group and priority"
        )
