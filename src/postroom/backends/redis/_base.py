"""The Redis backend's connection: the client (single server or Cluster), the
loaded scripts and the key names of each queue."""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from ...model.errors import BackendError, ConfigurationError
from ..base import Backend
from ._direct import DirectCalls
from ._keys import QUEUE_KEY_KINDS, GlobalKeys, parse_url, queue_keys, queue_tag
from ._plain import PackedPlain, Unsure, WakeLengths
from ._prefetch import Prefetched
from ._records import as_text
from ._scripts import REDIS_PY, Scripts
from ._translate import translated

__all__ = ["RedisBase"]

# Connections per backend (a worker process shares one backend across handlers).
_MAX_CONNECTIONS = 256
# Position of each key kind in a queue's key list.
_KIND_INDEX = {kind: i for i, kind in enumerate(QUEUE_KEY_KINDS)}
# Connections per cluster node (see _cluster_client).
_MAX_CLUSTER_CONNECTIONS = 2048
# Seconds a command waits for a free pooled connection before failing.
_POOL_TIMEOUT = 30.0
_SAFE_POLICIES = ("noeviction",)

log = logging.getLogger(__name__)


class RedisBase(Backend):
    """What :class:`~postroom.backends.redis.RedisBackend` builds on."""

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
        self._unsure = Unsure()
        self._wake = WakeLengths()
        self._plain: dict[tuple[str, bool], PackedPlain] = {}
        self.direct = DirectCalls(self._redis_url, self.where)

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
            # RESP2: the replies that arrive with the first of a pipeline are
            # then taken from hiredis's reader directly (_direct.buffered), which
            # RESP3 (redis-py 8's default) rules out.
            protocol=2,
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
        self.direct.close()
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


async def _cluster_enabled(r: Redis) -> bool:
    """Whether the server is a Redis Cluster node (``INFO cluster``)."""
    try:
        info = await r.info("cluster")
    except redis.exceptions.ResponseError:  # INFO renamed or disabled
        return False
    return bool(int(info.get("cluster_enabled", 0)))
