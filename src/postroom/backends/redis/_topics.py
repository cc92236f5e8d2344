"""Topics and subscriptions of the Redis backend (rarely used, not on the hot path)."""

from __future__ import annotations

import json

from ...model.message import Subscription
from ...model.stats import TopicInfo
from ._base import RedisBase
from ._translate import translated

__all__ = ["TopicsMixin"]

_SEP = "\x00"  # between topic and name in the subscriptions hash


class TopicsMixin(RedisBase):
    """Subscriptions in one hash, publish counters in two, under ``{prefix}``."""

    @translated
    async def put_subscription(self, subscription: Subscription) -> Subscription:
        """Store a subscription; an existing one of that name is returned unchanged."""
        field = f"{subscription.topic}{_SEP}{subscription.name}"
        data = json.dumps(subscription.to_dict())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self.glob.subscriptions, field, data)
            pipe.hget(self.glob.subscriptions, field)
            pipe.hsetnx(self.glob.published, subscription.topic, 0)
            _, stored, _ = await pipe.execute()
        return Subscription.from_dict(json.loads(stored))

    @translated
    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """Subscriptions of ``topic`` (or of every topic), sorted by topic and name."""
        raw = await self.redis.hgetall(self.glob.subscriptions)
        subs = [Subscription.from_dict(json.loads(v)) for v in raw.values()]
        return sorted(
            (s for s in subs if topic is None or s.topic == topic),
            key=lambda s: (s.topic, s.name),
        )

    @translated
    async def delete_subscription(self, topic: str, name: str) -> bool:
        """Delete a subscription and its queue; whether it existed."""
        field = f"{topic}{_SEP}{name}"
        stored = await self.redis.hget(self.glob.subscriptions, field)
        if stored is None:
            return False
        queue = Subscription.from_dict(json.loads(stored)).queue
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(self.glob.subscriptions, field)
            pipe.srem(self.glob.queues, queue)
            pipe.delete(*self.keys(queue))
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    @translated
    async def record_publish(self, topic: str, copies: int) -> None:
        """Count one publish (and whether it reached no subscription)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self.glob.published, topic, 1)
            pipe.hincrby(self.glob.unrouted, topic, 1 if copies == 0 else 0)
            await pipe.execute()

    @translated
    async def list_topics(self) -> list[TopicInfo]:
        """Every topic that has subscriptions or was published to, sorted."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hkeys(self.glob.subscriptions)
            pipe.hgetall(self.glob.published)
            pipe.hgetall(self.glob.unrouted)
            fields, published, unrouted = await pipe.execute()
        subs: dict[str, int] = {}
        for f in fields:
            t = f.decode().split(_SEP, 1)[0]
            subs[t] = subs.get(t, 0) + 1
        out = []
        for raw_topic, n in sorted(published.items()):
            t = raw_topic.decode()
            missed = int(unrouted.get(raw_topic, 0))
            out.append(TopicInfo(t, subs.get(t, 0), int(n), missed))
        return out
