"""Topics of :class:`~postroom.client.core.AsyncClient`: publish, subscriptions."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ..model import arguments as check
from ..model import tracing, validate
from ..model.codec import build_message
from ..model.errors import SubscriptionNotFound
from ..model.message import QueuePolicy, Subscription, from_ms, now_ms
from ..model.names import (
    dead_letter_queue_name,
    subscription_queue_name,
)
from ..model.retry import Backoff
from ..model.retry import seconds as to_seconds
from ..model.signing import validate_endpoint
from ..model.stats import TopicInfo
from ._base import ClientBase

__all__ = ["Topics"]


class Topics(ClientBase):
    """The topic and subscription methods of the client."""

    async def publish(
        self, topic: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> str:
        """Copy an event into every matching subscription of ``topic``; return its id.

        Every copy has the same id. Publishing to a topic without subscriptions is
        counted (see :meth:`topics`), not an error.
        """
        check.check_publish(topic, headers)
        with tracing.producer_span(topic, "publish") as span:
            backend = await self._b()
            subs = await backend.list_subscriptions(topic)
            headers = {**(tracing.inject(headers) or {}), "postroom-topic": topic}
            event = build_message(topic, body, now=now_ms(), headers=headers)
            copies = [
                replace(event, queue=sub.queue)
                for sub in subs
                if sub.matches(event.headers)
            ]
            await backend.fan_out(topic, copies)
            if span is not None:
                span.set_attribute("messaging.message.id", event.id)
        return event.id

    async def create_subscription(
        self,
        topic: str,
        name: str,
        *,
        push_endpoint: str | None = None,
        secret: str | None = None,
        filter: Mapping[str, str] | None = None,
        max_attempts: int = 5,
        visibility_timeout: float | timedelta = 30.0,
        backoff: Backoff | None = None,
    ) -> Subscription:
        """Create a durable subscription of ``topic`` (idempotent by name).

        The ``secret`` (which signs push deliveries) is generated when not given.
        When the subscription exists it is returned as it is: its queue's policy,
        possibly tuned since with :meth:`declare_queue`, is left alone (delete and
        create again to change its endpoint or filter).
        """
        check.check_subscription(
            topic,
            name,
            push_endpoint,
            secret,
            filter,
            max_attempts,
            visibility_timeout,
            backoff,
        )
        if push_endpoint is not None:
            validate_endpoint(push_endpoint)
        # Every subscription gets a secret, so one made for pulling can be turned
        # into a push subscription without a new secret to distribute.
        secret = secret or secrets.token_urlsafe(32)
        queue = subscription_queue_name(topic, name)
        policy = QueuePolicy(
            max_attempts=max_attempts,
            visibility_timeout=to_seconds(visibility_timeout) or 30.0,
            backoff=backoff or Backoff(),
            dead_letter=dead_letter_queue_name(queue),
        )
        backend = await self._b()
        for existing in await backend.list_subscriptions(topic):
            if existing.name == name:
                await backend.declare_queue(queue, policy, replace=False)
                return existing
        await backend.declare_queue(queue, policy, replace=True)
        self._policies.pop(queue, None)
        sub = Subscription(
            topic=topic,
            name=name,
            queue=queue,
            push_endpoint=push_endpoint,
            secret=secret,
            filter=dict(filter) if filter else None,
            max_attempts=max_attempts,
            created_at=from_ms(now_ms()),
        )
        return await backend.put_subscription(sub)

    async def subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """Subscriptions of ``topic``, or all of them."""
        validate.optional_name(topic, "topic")
        return await (await self._b()).list_subscriptions(topic)

    async def subscription(self, topic: str, name: str) -> Subscription:
        """One subscription; raises :class:`SubscriptionNotFound`."""
        check.check_subscription_ref(topic, name)
        for sub in await (await self._b()).list_subscriptions(topic):
            if sub.name == name:
                return sub
        raise SubscriptionNotFound(topic, name)

    async def delete_subscription(self, topic: str, name: str) -> None:
        """Delete a subscription and its queue."""
        check.check_subscription_ref(topic, name)
        if not await (await self._b()).delete_subscription(topic, name):
            raise SubscriptionNotFound(topic, name)
        self._policies.pop(subscription_queue_name(topic, name), None)

    async def topics(self) -> list[TopicInfo]:
        """Every topic with its subscription count and publish counters."""
        return await (await self._b()).list_topics()
