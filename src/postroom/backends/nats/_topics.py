"""Topics and subscriptions: subscriptions in the KV bucket, one queue (three
streams and a consumer) per subscription, publish counters per topic."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ...model.errors import QueueNotFound
from ...model.message import Message, Subscription
from ..base import TopicInfo
from ._admin import Admin
from ._names import token, untoken
from ._ordered import Ordered
from ._records import Meta

__all__ = ["Topics"]


def _sub_key(topic: str, name: str) -> str:
    return f"sub.{token(topic)}.{token(name)}"


class Topics(Admin, Ordered):
    """Subscriptions and topic counters."""

    async def put_subscription(self, subscription: Subscription) -> Subscription:
        key = _sub_key(subscription.topic, subscription.name)
        while True:
            got = await self.meta.get(key)
            if got is not None:
                return Subscription.from_dict(got[0])
            if await self.meta.cas(key, subscription.to_dict(), 0) is not None:
                return subscription

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        pattern = f"sub.{token(topic)}.*" if topic is not None else "sub.*.*"
        keys = await self.meta.keys(pattern)
        found = await asyncio.gather(*(self.meta.get(k) for k in keys))
        subs = [Subscription.from_dict(got[0]) for got in found if got is not None]
        return sorted(subs, key=lambda s: (s.topic, s.name))

    async def delete_subscription(self, topic: str, name: str) -> bool:
        key = _sub_key(topic, name)
        got = await self.meta.get(key)
        if got is None:
            return False
        sub = Subscription.from_dict(got[0])
        await self.meta.delete(key)
        await self.delete_queue_data(sub.queue)
        return True

    async def fan_out(self, topic: str, copies: Sequence[Message]) -> int:
        """Store every copy at once (one publish each, sent together), then count
        the publish. A copy whose subscription was deleted meanwhile is skipped."""

        async def one(copy: Message) -> str | None:
            try:
                new = await self.store(
                    copy.queue, Meta.of(copy), copy.body, f"{copy.id}.s"
                )
            except QueueNotFound:
                return None
            return copy.queue if new else None

        stored = [q for q in await asyncio.gather(*(one(c) for c in copies)) if q]
        for queue in stored:
            await self.tally.add(self.count_key(queue, "sent"), {"sent": 1})
        await self.record_publish(topic, len(stored))
        return len(stored)

    async def record_publish(self, topic: str, copies: int) -> None:
        await self.tally.add(
            self.counter_key("top", topic),
            {"published": 1, "unrouted": 1 if copies == 0 else 0},
        )

    async def list_topics(self) -> list[TopicInfo]:
        counted = {untoken(k.partition(".")[2]) for k in await self.meta.keys("top.*")}
        subs: dict[str, int] = {}
        for key in await self.meta.keys("sub.*.*"):
            topic = untoken(key.split(".")[1])
            subs[topic] = subs.get(topic, 0) + 1
        out: list[TopicInfo] = []
        for topic in sorted(counted | set(subs)):
            cells = await self.tally.read(self.counter_key("top", topic))
            out.append(
                TopicInfo(
                    topic,
                    subs.get(topic, 0),
                    int(cells.get("published", 0)),
                    int(cells.get("unrouted", 0)),
                )
            )
        return out
