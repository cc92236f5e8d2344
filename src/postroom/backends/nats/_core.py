"""What every part of the NATS backend shares: names, the connection, the KV
buckets, the policy cache and the layout of a queue's streams."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RawStreamMsg,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from ...model.errors import ConfigurationError, QueueNotFound
from ...model.message import QueuePolicy
from ..base import Backend
from ._conn import Jet, translated
from ._kv import Bucket, Tally
from ._leases import GRACE_MS, LeaseKeeper, stream_of, stream_seq
from ._names import CONSUMER, LEVELS, Names, level_consumer, token
from ._rate import RateGate

__all__ = ["NatsCore"]

_POLICY_TTL = 1.0
_MOVE_IDS_FOR = 120.0  # the queue streams' duplicate window (idempotent moves)
_DELAY_ACK_WAIT = 30.0
_DEDUP_KEYS_FOR = 7 * 24 * 3600.0
_MARKS_FOR = 7 * 24 * 3600.0  # an ended-lease mark left behind goes after that
_ENDS = frozenset({"acked", "retried", "dead_lettered"})


def _servers(url: str) -> tuple[list[str], str]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ConfigurationError(
            f"{url!r} names no NATS server: use e.g. nats://127.0.0.1:4222"
        )
    query = parse_qs(parts.query)
    prefix = (query.get("prefix") or ["postroom"])[0]
    hosts = parts.netloc.split(",")
    return [
        f"nats://{h}" if "@" in h or ":" in h else f"nats://{h}:4222" for h in hosts
    ], prefix


class NatsCore(Backend):
    """Shared state of :class:`NatsBackend`'s parts."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        servers, prefix = _servers(url)
        self.names = Names(prefix)
        self.jet = Jet(servers, {})
        self.meta = Bucket(self.jet, self.names.meta_bucket)
        self.dedup = Bucket(self.jet, self.names.dedup_bucket, max_age=_DEDUP_KEYS_FOR)
        self.tally = Tally(self.meta)
        self.rates = RateGate(self.meta)
        self.leases = LeaseKeeper(servers, self.mark_of)
        self._policies: dict[str, tuple[QueuePolicy, float]] = {}
        # Queues whose stored policy record says they use the priority stream.
        self.lanes: dict[str, bool] = {}

    async def connect(self) -> None:
        await self.jet.connect()
        await self.meta.create()
        await self.dedup.create()
        n = self.names
        await self.jet.ensure_stream(
            StreamConfig(
                name=n.ended_stream,
                subjects=[n.ended_subject("*")],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_msgs_per_subject=1,
                max_age=_MARKS_FOR,
            )
        )

    async def aclose(self) -> None:
        await self.give_back_all()
        await self.leases.stop()
        await self.jet.close()

    def mark_of(self, reply: str) -> str:
        """The ended-lease mark of a delivery (see :meth:`Names.ended_stream`)."""
        return self.names.ended_subject(stream_of(reply), stream_seq(reply))

    async def mark_ended(self, replies: list[str]) -> None:
        """NAK deliveries whose lease ended, each marked first (so that a claim
        that delivers it again finds the mark to remove)."""
        await asyncio.gather(*(self.jet.mark(self.mark_of(r)) for r in replies))
        await asyncio.gather(*(self.jet.ack(r, b"-NAK") for r in replies))

    async def unmark(self, replies: list[str]) -> None:
        """Remove the marks of deliveries that follow an ended lease."""
        stream = self.names.ended_stream
        await asyncio.gather(
            *(self.jet.unmark(stream, self.mark_of(r)) for r in replies)
        )

    # -- policies ------------------------------------------------------------------

    @staticmethod
    def policy_key(queue: str) -> str:
        """The KV key of a queue's policy."""
        return f"pol.{token(queue)}"

    @staticmethod
    def counter_key(kind: str, name: str) -> str:
        """The KV key of a queue's (or topic's) counters of one kind."""
        return f"{kind}.{token(name)}"

    def count_key(self, queue: str, counter: str) -> str:
        """The KV key holding one of a queue's lifetime counters: those that
        settling counts (``acked``, ``retried``, ``dead_lettered``) are kept apart
        from those that sending counts, so that a worker's compare-and-sets never
        collide with a sender's."""
        return self.counter_key("end" if counter in _ENDS else "cnt", queue)

    @staticmethod
    def rate_key(queue: str) -> str:
        """The KV key of a queue's token bucket (see ``_rate``)."""
        return f"rate.{token(queue)}"

    @staticmethod
    def group_key(queue: str, group: str | None = None) -> str:
        """The KV key of a group's state (``None``: a pattern of all of them)."""
        return f"grp.{token(queue)}.{'*' if group is None else token(group)}"

    def forget_rate(self, queue: str) -> None:
        """Drop the cached token bucket of a deleted queue."""
        self.rates.forget(self.rate_key(queue))

    async def policy(self, queue: str) -> QueuePolicy:
        """The policy of ``queue`` (cached for a second); :class:`QueueNotFound`."""
        cached = self._policies.get(queue)
        if cached is not None and time.monotonic() - cached[1] < _POLICY_TTL:
            return cached[0]
        got = await self.get_policy(queue)
        if got is None:
            raise QueueNotFound(queue)
        return got

    async def get_policy(self, queue: str) -> QueuePolicy | None:
        got = await self.meta.get(self.policy_key(queue))
        if got is None:
            self._policies.pop(queue, None)
            return None
        policy = QueuePolicy.from_dict(got[0]["policy"])
        self._policies[queue] = (policy, time.monotonic())
        self.lanes[queue] = bool(got[0].get("p"))
        return policy

    async def give_back_all(self) -> None:
        """Release what was claimed ahead (see ``Messages.wait``)."""

    def remember(self, queue: str, policy: QueuePolicy | None) -> None:
        """Cache a policy just stored (``None``: forget it)."""
        if policy is None:
            self._policies.pop(queue, None)
            self.lanes.pop(queue, None)
        else:
            self._policies[queue] = (policy, time.monotonic())

    # -- streams -------------------------------------------------------------------

    async def create_streams(self, queue: str, policy: QueuePolicy) -> None:
        """Create (or update) a queue's three streams and two consumers."""
        n = self.names
        for name, subject, retention in (
            (n.stream(queue), n.subject(queue), RetentionPolicy.WORK_QUEUE),
            (n.delay_stream(queue), n.delay_subject(queue), RetentionPolicy.WORK_QUEUE),
            (n.dead_stream(queue), n.dead_subject(queue), RetentionPolicy.LIMITS),
        ):
            await self.jet.ensure_stream(
                StreamConfig(
                    name=name,
                    description=queue,
                    subjects=[subject],
                    retention=retention,
                    storage=StorageType.FILE,
                    duplicate_window=_MOVE_IDS_FOR,
                )
            )
        for stream, ack_wait in (
            (n.stream(queue), policy.visibility_timeout + GRACE_MS / 1000),
            (n.delay_stream(queue), _DELAY_ACK_WAIT),
        ):
            async with translated(self.jet.where):
                await self.jet.js.add_consumer(
                    stream,
                    ConsumerConfig(
                        durable_name=CONSUMER,
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        ack_wait=ack_wait,
                        max_deliver=-1,
                        max_ack_pending=-1,
                    ),
                )

    async def create_lanes(self, queue: str, policy: QueuePolicy) -> None:
        """Create (or update) the stream of priorities 1-9 and its consumers."""
        n = self.names
        stream = n.prio_stream(queue)
        await self.jet.ensure_stream(
            StreamConfig(
                name=stream,
                description=queue,
                subjects=[n.prio_subject(queue)],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=_MOVE_IDS_FOR,
            )
        )
        for level in LEVELS:
            async with translated(self.jet.where):
                await self.jet.js.add_consumer(
                    stream,
                    ConsumerConfig(
                        durable_name=level_consumer(level),
                        filter_subject=n.prio_subject(queue, level),
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        ack_wait=policy.visibility_timeout + GRACE_MS / 1000,
                        max_deliver=-1,
                        max_ack_pending=-1,
                    ),
                )

    async def create_group_stream(self, queue: str) -> None:
        """Create the stream of grouped messages waiting behind their heads."""
        n = self.names
        await self.jet.ensure_stream(
            StreamConfig(
                name=n.group_stream(queue),
                description=queue,
                subjects=[n.group_subject(queue)],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=_MOVE_IDS_FOR,
            )
        )

    def queue_streams(self, queue: str) -> tuple[str, ...]:
        """Every stream a queue may have."""
        n = self.names
        return (
            n.stream(queue),
            n.delay_stream(queue),
            n.dead_stream(queue),
            n.prio_stream(queue),
            n.group_stream(queue),
        )

    async def delete_streams(self, queue: str) -> None:
        """Delete a queue's streams (its consumers go with them)."""
        for stream in self.queue_streams(queue):
            await self.jet.delete_stream(stream)

    async def scan(
        self, stream: str, subject: str, limit: int, start: int = 1
    ) -> list[RawStreamMsg]:
        """Up to ``limit`` stored messages on ``subject``, in stream order."""
        out: list[RawStreamMsg] = []
        seq = start
        while len(out) < limit:
            raw = await self.jet.get(stream, subject, seq=seq)
            if raw is None or raw.seq is None:
                break
            out.append(raw)
            seq = raw.seq + 1
        return out
