"""``redis://``, ``rediss://``, ``valkey://``: the Redis (>= 6.2) and Valkey backend.

Every operation family is one atomic Lua script over the keys of one queue, which
share the hash tag ``{prefix:queue}``. Consumers resolve expired leases themselves
(inside ``claim``, ``stats`` and ``dead_letters``); waiting consumers block on a
per-queue notification list (``BLPOP``) that every state change pushes to, with a
timeout bounded by the next due delayed message or lease expiry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import anyio.lowlevel

import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from ...model.errors import BackendError, ConfigurationError, QueueNotFound
from ...model.message import (
    Delivery,
    HistoryEntry,
    Message,
    QueuePolicy,
    QueueStats,
    from_ms,
    now_ms,
    to_ms_dt,
)
from ...model.stats import COUNTERS, DurationHistogram, duration_cells
from .._common import lease_lost, new_token, parse_receipt
from ..base import Backend, Capabilities
from . import _durations, _workers
from ._dead import DeadLettersMixin
from ._keys import QUEUE_KEY_KINDS, GlobalKeys, parse_url, queue_keys, queue_tag
from ._prefetch import Prefetched
from ._records import (
    as_text,
    deliveries_from,
    encode_message,
)
from ._scripts import FIRST_TRY, REDIS_PY, Call, Scripts
from ._topics import TopicsMixin
from ._translate import translated

__all__ = ["RedisBackend"]


# Connections per backend (a worker process shares one backend across handlers).
_MAX_CONNECTIONS = 256
# Position of each key kind in a queue's key list.
_KIND_INDEX = {kind: i for i, kind in enumerate(QUEUE_KEY_KINDS)}
# Connections per cluster node (see _cluster_client).
_MAX_CLUSTER_CONNECTIONS = 2048
# Seconds a command waits for a free pooled connection before failing.
_POOL_TIMEOUT = 30.0

log = logging.getLogger(__name__)

_SEND_CHUNK = 1000  # messages per enqueue script call (keeps each call short)
_MAX_WAKE = 16  # tokens kept on a notification list at most (as lib.lua's MAX_WAKE)
_CLAIM_MAX = 1000
_MAX_UNSURE = 10_000
_SAFE_POLICIES = ("noeviction",)
_DEAD_PAGE = 200


class RedisBackend(DeadLettersMixin, TopicsMixin, Backend):
    """Queues, dead letters and topics in Redis or Valkey, one Lua script per step."""

    capabilities = Capabilities(
        durable=True,
        cross_process=True,
        native_wakeups=True,
        worker_registry=True,
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._redis_url, self.prefix = parse_url(url)
        self.where = self._redis_url.split("@")[-1].split("?")[0]
        self.glob = GlobalKeys(self.prefix)
        self._r: Redis | None = None
        self._scripts: Scripts | None = None
        self._keys: dict[str, list[str]] = {}
        self._tags: dict[str, list[str]] = {}
        self._due: dict[str, int] = {}
        self._ahead = Prefetched()
        # Ids of single sends whose transaction may or may not have run (its
        # connection broke): sent again only through the enqueue script.
        self._unsure: dict[str, None] = {}

    # -- lifecycle -----------------------------------------------------------------

    @translated
    async def connect(self) -> None:
        """Connect, load the scripts and check the eviction policy."""
        if self._r is not None:
            return
        # A pooled connection that the server closed (restart, failover, idle
        # timeout) is reopened and the command sent again, a few times.
        retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)
        # A blocking pool: a worker with more handlers in flight than connections
        # waits for a free one instead of failing with "Too many connections".
        # `?max_connections=` in the URL overrides the size.
        pool = BlockingConnectionPool.from_url(
            self._redis_url,
            max_connections=_MAX_CONNECTIONS,
            timeout=_POOL_TIMEOUT,
            decode_responses=False,
            retry=retry,
            retry_on_error=[
                redis.exceptions.ConnectionError,
                redis.exceptions.TimeoutError,
            ],
        )
        r: Any = Redis.from_pool(pool)
        try:
            cluster = await _cluster_enabled(r)
            if cluster:
                await r.aclose()
                r = self._cluster_client()
                await r.initialize()
            scripts = Scripts(r, cluster=cluster)
            await scripts.load()
            await self._check_eviction(r)
        except BaseException:
            await r.aclose()
            raise
        self._r, self._scripts = r, scripts

    def _cluster_client(self) -> Any:
        """A Redis Cluster client: the URL names any one node; the others are
        discovered. Each call goes to the shard of its queue's hash tag."""
        if REDIS_PY < (8, 0):
            raise ConfigurationError(
                f"{self.where} is a Redis Cluster node: postroom needs redis-py >= "
                f"8.0 for a cluster (its transactions within one slot), and "
                f"{redis.__version__} is installed: pip install -U 'redis>=8'"
            )
        return RedisCluster.from_url(
            self._redis_url,
            # Per node. redis-py's cluster client fails a call beyond it rather
            # than wait, so it is set well above any worker's concurrency.
            max_connections=_MAX_CLUSTER_CONNECTIONS,
            decode_responses=False,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        )

    async def _check_eviction(self, r: Redis) -> None:
        try:
            got = await r.config_get("maxmemory-policy")
        except redis.exceptions.ResponseError as exc:  # CONFIG renamed or disabled
            log.debug("cannot read maxmemory-policy from Redis: %s", exc)
            return
        policy = as_text(next(iter(dict(got).values()), b""))
        # postroom sets no TTLs, so volatile-* policies never evict its keys.
        safe = policy in _SAFE_POLICIES or policy.startswith("volatile")
        if policy and not safe:
            log.warning(
                "Redis at %s has maxmemory-policy=%s: when memory runs out Redis may "
                "evict postroom's keys and lose messages. Set `maxmemory-policy "
                "noeviction` (CONFIG SET, or in redis.conf)",
                self.where,
                policy,
            )

    async def aclose(self) -> None:
        """Give back deliveries claimed ahead, then close the connection pool."""
        ahead = self._ahead.drain()
        if ahead and self._r is not None:
            try:
                await self.release(ahead)
            except BackendError as exc:
                log.warning("could not give back %d messages: %s", len(ahead), exc)
        r, scripts = self._r, self._scripts
        self._r, self._scripts = None, None
        if r is not None and scripts is not None:
            try:
                await scripts.close()
                await r.aclose()
            except (redis.exceptions.RedisError, OSError) as exc:
                log.debug("closing Redis connections failed: %s", exc)

    @property
    def redis(self) -> Redis:
        """The redis-py client (connected)."""
        if self._r is None:
            raise BackendError("the Redis backend is not connected: call connect()")
        return self._r

    @property
    def cluster(self) -> bool:
        """Whether the server is a Redis Cluster (found at connect)."""
        return self._scripts is not None and self._scripts.cluster

    @property
    def scripts(self) -> Scripts:
        """The loaded scripts."""
        if self._scripts is None:
            raise BackendError("the Redis backend is not connected: call connect()")
        return self._scripts

    def keys(self, queue: str) -> list[str]:
        """The keys of ``queue`` in script order."""
        keys = self._keys.get(queue)
        if keys is None:
            keys = self._keys[queue] = queue_keys(self.prefix, queue)
        return keys

    def script_keys(self, queue: str) -> list[str]:
        """The KEYS of every script call on ``queue``: its hash tag alone."""
        keys = self._tags.get(queue)
        if keys is None:
            keys = self._tags[queue] = [queue_tag(self.prefix, queue)]
        return keys

    def key(self, queue: str, kind: str) -> str:
        """One key of ``queue``."""
        return self.keys(queue)[_KIND_INDEX[kind]]

    # -- queues --------------------------------------------------------------------

    @translated
    async def declare_queue(
        self, queue: str, policy: QueuePolicy, *, replace: bool = True
    ) -> QueuePolicy:
        data = json.dumps(policy.to_dict())
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key(queue, "policy"), data, nx=not replace)
            pipe.get(self.key(queue, "policy"))
            pipe.sadd(self.glob.queues, queue)
            _, stored, _ = await pipe.execute()
        return QueuePolicy.from_dict(json.loads(stored)) if stored else policy

    @translated
    async def get_policy(self, queue: str) -> QueuePolicy | None:
        stored = await self.redis.get(self.key(queue, "policy"))
        return QueuePolicy.from_dict(json.loads(stored)) if stored else None

    @translated
    async def list_queues(self) -> list[str]:
        members = await self.redis.smembers(self.glob.queues)
        return sorted(as_text(m) for m in members)

    @translated
    async def delete_queue(self, queue: str) -> bool:
        # Every key of the queue shares its hash tag: one DEL, one shard.
        keys = [*self.keys(queue), _durations.durations_key(self.prefix, queue)]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.srem(self.glob.queues, queue)
            pipe.delete(*keys)
            removed, deleted = await pipe.execute()
        return bool(removed or deleted)

    # -- messages ------------------------------------------------------------------

    @translated
    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        one = messages[0] if len(messages) == 1 else None
        if (
            one
            and not one.dedup_key
            and not self.cluster
            and one.id not in self._unsure
        ):
            return [await self._enqueue_one(queue, one)]
        return await self._enqueue_scripted(queue, messages, dedup_window_ms)

    async def _enqueue_scripted(
        self, queue: str, messages: Sequence[Message], dedup_window_ms: int
    ) -> list[str]:
        """Store messages through the enqueue script (which stores an id already
        live only once, so a retried send is harmless)."""
        calls = [
            self._enqueue_call(
                queue, messages[i : i + _SEND_CHUNK], dedup_window_ms, "send"
            )
            for i in range(0, len(messages), _SEND_CHUNK)
        ]
        try:
            results = await self.scripts.run_many(calls)
        except redis.exceptions.ResponseError as exc:
            if _no_queue(exc):
                raise QueueNotFound(queue) from None
            raise
        return [mid.decode() for chunk in results for mid in chunk]

    def _remember_unsure(self, mid: str) -> None:
        self._unsure[mid] = None
        if len(self._unsure) > _MAX_UNSURE:
            del self._unsure[next(iter(self._unsure))]

    async def _enqueue_one(self, queue: str, m: Message) -> str:
        """Store one message without a dedup key: the enqueue script's writes as
        plain commands in one MULTI/EXEC, which costs Redis a fraction of a script
        call (this is on the path of every single send's latency)."""
        policy, queued, live, msg, counters, notify = (
            self.key(queue, kind)
            for kind in ("policy", "queued", "live", "msg", "counters", "notify")
        )
        mid = m.id
        try:
            exists, *_ = await self.scripts.transaction(
                [
                    ("EXISTS", policy),
                    ("HSET", msg, mid, encode_message(m)),
                    ("ZADD", queued, to_ms_dt(m.available_at), mid),
                    ("ZADD", live, to_ms_dt(m.enqueued_at), mid),
                    ("HINCRBY", counters, "sent", 1),
                    ("LPUSH", notify, "1"),
                    ("LTRIM", notify, 0, _MAX_WAKE - 1),
                ],
                again=False,
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # It may have run before its reply was lost: the plain commands are
            # not sent again, the enqueue script is (it skips an id already
            # live). Until that succeeds, a retry of this id goes the same way.
            self._remember_unsure(mid)
            [stored] = await self._enqueue_scripted(queue, [m], 0)
            self._unsure.pop(mid, None)
            return stored
        if not exists:
            # The queue was never declared (or was deleted): take the writes back.
            await self.scripts.transaction(
                [
                    ("HDEL", msg, mid),
                    ("ZREM", queued, mid),
                    ("ZREM", live, mid),
                    ("HINCRBY", counters, "sent", -1),
                    ("DEL", notify),
                ]
            )
            raise QueueNotFound(queue)
        return mid

    @translated
    async def fan_out(self, topic: str, copies: Sequence[Message]) -> int:
        """Store every copy of one publish in one pipelined round trip (each copy
        atomically on its own queue, which may live on another Cluster slot), then
        count the publish."""
        calls = [self._enqueue_call(m.queue, [m], 0, "send") for m in copies]
        results = await self.scripts.run_many(calls, raise_errors=False)
        stored = 0
        for result in results:
            if isinstance(result, Exception):
                if not _no_queue(result):
                    raise result
                continue
            stored += 1
        await self.record_publish(topic, stored)
        return stored

    def _enqueue_call(
        self, queue: str, messages: Sequence[Message], window_ms: int, mode: str
    ) -> Call:
        args: list[Any] = [now_ms(), window_ms, mode]
        for m in messages:
            args += (
                m.id,
                to_ms_dt(m.available_at),
                to_ms_dt(m.enqueued_at),
                m.dedup_key or "",
                encode_message(m),
            )
        return ("enqueue", self.script_keys(queue), args)

    @translated
    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        n = min(max_messages, _CLAIM_MAX)
        ready, stale = self._ahead.take(queue, n, lease_ms, consumer)
        if stale:
            await self.release(stale)
        self._ahead.args[queue] = (n, lease_ms, consumer)
        if ready:
            return ready
        token = new_token()
        args = (now_ms(), n, lease_ms, token, consumer)
        try:
            reply = await self.scripts.run("claim", self.script_keys(queue), args)
        except redis.exceptions.ResponseError as exc:
            if _no_queue(exc):
                raise QueueNotFound(queue) from None
            raise
        return self._claimed(queue, reply, token, consumer)

    def _claimed(
        self, queue: str, reply: list[Any], token: str, consumer: str
    ) -> list[Delivery]:
        """Deliveries of a claim reply; remember when the queue is next due."""
        if not reply[1]:
            self._due[queue] = int(reply[0])
            return []
        self._due[queue] = int(reply[2])
        return deliveries_from(queue, reply[1], token, int(reply[0]), consumer)

    @translated
    async def wait(self, queue: str, timeout: float) -> None:
        # Let work the caller just started (handlers of the messages it claimed)
        # run before this coroutine spends time on building the next wait.
        await anyio.lowlevel.checkpoint()
        due = self._due.pop(queue, -1)
        if due >= 0:
            timeout = min(timeout, (due - now_ms()) / 1000)
        if timeout <= 0:
            return
        # BLPOP's timeout is in seconds with millisecond precision; 0 would block
        # forever, so never pass less than 1 ms.
        timeout = max(timeout, 0.001)
        notify = self.key(queue, "notify")
        args = self._ahead.args.get(queue)
        if args is None:
            await self.scripts.blpop(notify, timeout)
            return
        # Claim in the same round trip, the moment the wait ends ('*': the claim
        # reads the server's clock then). The next claim() hands the result out.
        n, lease_ms, consumer = args
        token = new_token()
        call = ("claim", self.script_keys(queue), ("*", n, lease_ms, token, consumer))
        try:
            result = await self.scripts.after_blpop(notify, timeout, call)
        except redis.exceptions.ResponseError as exc:
            if _no_queue(exc):
                return  # the next claim() says so
            raise
        if result is None:
            return
        got = self._claimed(queue, result, token, consumer)
        if got:
            stale = self._ahead.put(queue, lease_ms, consumer, got)
            if stale:
                await self.release(stale)

    def _ack_calls(
        self, deliveries: Sequence[Delivery]
    ) -> tuple[list[Call], list[list[Delivery]]]:
        """The ack script calls (per queue, in chunks) and the deliveries of each."""
        by_queue: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d)
        calls: list[Call] = []
        groups: list[list[Delivery]] = []
        for queue, group in by_queue.items():
            for i in range(0, len(group), _SEND_CHUNK):
                chunk = group[i : i + _SEND_CHUNK]
                args = [FIRST_TRY, *_receipt_args(chunk)]
                calls.append(("ack", self.script_keys(queue), args))
                groups.append(chunk)
        return calls, groups

    @staticmethod
    def _acked(groups: list[list[Delivery]], results: Sequence[Any]) -> list[Delivery]:
        """The lost leases reported by ack replies (an error reply is raised)."""
        lost: list[Delivery] = []
        for group, reply in zip(groups, results, strict=True):
            if isinstance(reply, Exception):
                raise reply
            lost += [group[pos - 1] for pos in reply]
        return lost

    @translated
    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        calls, groups = self._ack_calls(deliveries)
        return self._acked(groups, await self.scripts.run_many(calls))

    @translated
    async def ack_and_claim(
        self,
        deliveries: Sequence[Delivery],
        queue: str,
        max_messages: int,
        lease_ms: int,
        consumer: str,
    ) -> tuple[list[Delivery], list[Delivery]]:
        """The ack scripts and the claim script pipelined: one round trip."""
        if not deliveries or queue in self._ahead.held:  # hand out those first
            return await super().ack_and_claim(
                deliveries, queue, max_messages, lease_ms, consumer
            )
        calls, groups = self._ack_calls(deliveries)
        token = new_token()
        args = (now_ms(), min(max_messages, _CLAIM_MAX), lease_ms, token, consumer)
        calls.append(("claim", self.script_keys(queue), args))
        results = await self.scripts.run_many(calls, raise_errors=False)
        lost = self._acked(groups, results[:-1])
        reply = results[-1]
        if isinstance(reply, Exception):
            if _no_queue(reply):
                raise QueueNotFound(queue) from None
            raise reply
        return lost, self._claimed(queue, reply, token, consumer)

    async def _held_call(self, name: str, delivery: Delivery, *args: Any) -> int:
        mid, token = parse_receipt(delivery.receipt)
        result = await self.scripts.run(
            name, self.script_keys(delivery.queue), (now_ms(), mid, token, *args)
        )
        if int(result) < 0 or (name != "extend" and int(result) == 0):
            raise lease_lost(mid)
        return int(result)

    @translated
    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        await self._held_call("retry", delivery, delay_ms, json.dumps(entry.to_dict()))

    @translated
    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        await self._held_call(
            "dead_letter", delivery, reason, json.dumps(entry.to_dict())
        )

    @translated
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        by_queue: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d)
        now = now_ms()
        calls: list[Call] = [
            ("release", self.script_keys(q), [now, *_receipt_args(group)])
            for q, group in by_queue.items()
        ]
        if calls:
            await self.scripts.run_many(calls)

    @translated
    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        expires = await self._held_call("extend", delivery, lease_ms)
        return Delivery(
            delivery.message, delivery.receipt, from_ms(expires), delivery.consumer
        )

    @translated
    async def peek(self, queue: str, limit: int) -> list[Message]:
        from ._records import decode_message

        if limit < 1:
            return []
        ids = [
            as_text(m)
            for m in await self.redis.zrange(self.key(queue, "live"), 0, limit - 1)
        ]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(self.key(queue, "msg"), ids)
            pipe.hmget(self.key(queue, "att"), ids)
            payloads, attempts = await pipe.execute()
        return [
            decode_message(mid, queue, p, int(a or 0))
            for mid, p, a in zip(ids, payloads, attempts, strict=True)
            if p is not None
        ]

    @translated
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        now = now_ms()
        calls: list[Call] = [("stats", self.script_keys(q), [now]) for q in queues]
        results = await self.scripts.run_many(calls) if calls else []
        out = []
        for name, (ready, delayed, in_flight, dead, oldest) in zip(
            queues, results, strict=True
        ):
            age = None if int(oldest) < 0 else max(0.0, (now - int(oldest)) / 1000)
            out.append(QueueStats(name, ready, delayed, in_flight, dead, age))
        return out

    @translated
    async def purge(self, queue: str, *, dead: bool) -> int:
        what = "dead" if dead else "live"
        return int(await self.scripts.run("purge", self.script_keys(queue), [what]))

    @translated
    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for q in queues:
                pipe.hgetall(self.key(q, "counters"))
            results = await pipe.execute()
        out: dict[str, dict[str, int]] = {}
        for q, raw in zip(queues, results, strict=True):
            got = {k.decode(): int(v) for k, v in raw.items()}
            out[q] = {name: got.get(name, 0) for name in COUNTERS}
        return out

    @translated
    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        cells = duration_cells(observations, count, sum_ms)
        await _durations.record_durations(self.redis, self.prefix, queue, cells)

    @translated
    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        return await _durations.durations(self.redis, self.prefix, queues)

    @translated
    async def put_worker(self, worker_id: str, record: str, expires_ms: int) -> None:
        await _workers.put_worker(
            self.redis, self.prefix, worker_id, record, expires_ms
        )

    @translated
    async def list_workers(self, now_ms: int) -> list[str]:
        return await _workers.list_workers(self.redis, self.prefix, now_ms)

    @translated
    async def delete_worker(self, worker_id: str) -> None:
        await _workers.delete_worker(self.redis, self.prefix, worker_id)

    # -- optional ------------------------------------------------------------------

    @translated
    async def sweep(self, queue: str) -> None:
        await self.scripts.run("stats", self.script_keys(queue), [now_ms()])


async def _cluster_enabled(r: Redis) -> bool:
    """Whether the server is a Redis Cluster node (``INFO cluster``)."""
    try:
        info = await r.info("cluster")
    except redis.exceptions.ResponseError:  # INFO renamed or disabled
        return False
    return bool(int(info.get("cluster_enabled", 0)))


def _no_queue(exc: Exception) -> bool:
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
        "NOQUEUE"
    )


def _receipt_args(deliveries: Sequence[Delivery]) -> list[str]:
    args: list[str] = []
    for d in deliveries:
        args += parse_receipt(d.receipt)
    return args
