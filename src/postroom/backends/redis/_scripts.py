"""The Lua scripts: read with importlib.resources, registered once per client.

Each operation family is one script; ``lib.lua`` (key layout and helpers) is
prepended to each, without the helpers the script does not use. Calls go by
EVALSHA; after a server restart or SCRIPT FLUSH the scripts are loaded again and
only the calls that were refused are repeated. Script calls and waits go down
connections kept between calls (see :meth:`Scripts._send`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    MovedError,
    NoScriptError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._direct import PARTIAL, buffered
from ._sources import source

_pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack_command
except ImportError:  # hiredis is optional: redis-py packs then
    _pack_command = None

__all__ = ["FIRST_TRY", "REDIS_PY", "SCRIPT_NAMES", "Call", "Scripts"]

# Scripts whose first argument says whether the call is a second try after a
# broken connection (the first may have run, its reply lost): ack.lua then takes a
# message that is gone for one its first try deleted, not for a lost lease.
FIRST_TRY, SECOND_TRY = "0", "1"
_TRY_MARKED = frozenset({"ack"})


def _second_try(call: Call) -> Call:
    """``call`` as sent again after its connection broke."""
    name, keys, args = call
    if name not in _TRY_MARKED:
        return call
    return name, keys, [SECOND_TRY, *list(args)[1:]]


SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "ack",
    "fail",
    "release",
    "extend",
    "redrive",
    "purge",
    "stats",
)

Call = tuple[str, Sequence[str], Sequence[Any]]

# Seconds a blocked read may take beyond the BLPOP's own timeout.
_READ_MARGIN = 5.0
# Cluster replies that a call went to a shard that no longer (or not yet) serves
# its slot: the cluster client sends it again where it belongs.
_REDIRECTIONS = (MovedError, AskError, TryAgainError)
# Connections kept out of the pool for the next call (see Scripts._send).
_SPARE = 16

# The installed redis-py, (major, minor).
REDIS_PY = tuple(int(p) for p in redis.__version__.split(".")[:2])
# redis-py < 5.3 needs a command name to hand out a connection; later versions
# warn when one is given.
_GET_CONNECTION_ARGS: tuple[str, ...] = () if REDIS_PY >= (5, 3) else ("_",)


_SOURCES: dict[str, str] = {}


class Scripts:
    """The registered scripts of one Redis client."""

    def __init__(self, redis: Redis, *, cluster: bool = False) -> None:
        if not _SOURCES:
            _SOURCES.update({name: source(name) for name in SCRIPT_NAMES})
        self._redis: Any = redis
        # A RedisCluster client: calls go through its pipelines (which route each
        # call to the shard of its key and follow redirections), waits down a
        # connection of the shard that holds the queue.
        self.cluster = cluster
        # Connections kept between calls (see _send).
        self._spare: list[Any] = []
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(src) for name, src in _SOURCES.items()
        }

    async def close(self) -> None:
        """Give the connections kept between calls back to the pool."""
        spare, self._spare = self._spare, []
        if not spare:
            return
        pool: Any = self._redis.connection_pool
        for conn in spare:
            await pool.release(conn)

    async def load(self) -> None:
        """Load every script into the server's script cache (one round trip; on a
        cluster, one per script, each to every node)."""
        if self.cluster:
            for script in self._scripts.values():
                await self._redis.script_load(script.script)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for script in self._scripts.values():
                pipe.script_load(script.script)
            await pipe.execute()

    async def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one script (one round trip)."""
        return (await self.run_many([(name, keys, args)]))[0]

    async def run_many(
        self, calls: Sequence[Call], *, raise_errors: bool = True
    ) -> list[Any]:
        """Run several scripts in one pipelined round trip; results in order.

        Raises the first error other than a missing script, or with
        ``raise_errors=False`` returns errors in place of results.
        """
        results = await self._evalshas(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            await self.load()
            again = await self._evalshas([calls[i] for i in missing])
            for i, r in zip(missing, again, strict=True):
                results[i] = r
        for r in results:
            if raise_errors and isinstance(r, Exception):
                raise r
        return results

    async def _evalshas(self, calls: Sequence[Call]) -> list[Any]:
        """EVALSHA each call down one kept connection; on a broken connection,
        once more through redis-py's pipeline (which reconnects and retries)."""
        if self.cluster:
            return await self._cluster_evalshas(calls)
        packed = [self._evalsha_command(call) for call in calls]
        try:
            return await self._send(packed, 0.0)
        except (RedisConnectionError, RedisTimeoutError):
            return await self._pipeline([_second_try(call) for call in calls])

    async def after_blpop(
        self, list_key: str, timeout: float, call: Call
    ) -> Any | None:
        """``BLPOP list_key timeout``, then the script, in one round trip.

        Redis runs the script as soon as the BLPOP returns (token or timeout).
        Returns the script's result, or ``None`` when the script had to be loaded.
        Both commands go down one pooled connection directly (a pipeline object
        costs more, and this is on the path of every wake-up). A cancelled read
        disconnects the connection, so no reply is left behind on it.
        """
        packed = [("BLPOP", list_key, timeout), self._evalsha_command(call)]
        try:
            result = (await self._send(packed, timeout, list_key))[-1]
        except RedisConnectionError:
            # A pooled connection the server closed (restart, idle timeout): the
            # commands never ran, so send them once more on a new connection.
            result = (await self._send(packed, timeout, list_key))[-1]
        if isinstance(result, NoScriptError):
            await self.load()
            return None
        if isinstance(result, ResponseError) and await self._redirected(result):
            return None
        if isinstance(result, Exception):
            raise result
        return result

    async def _redirected(self, error: ResponseError) -> bool:
        """On a cluster, whether a reply was a redirection (the queue's slot moved
        or is moving): then the slot map is read again; the caller's next claim
        goes through the cluster client, which follows the redirection."""
        if not self.cluster or not isinstance(error, _REDIRECTIONS):
            return False
        await self._redis.nodes_manager.initialize()
        return True

    async def blpop(self, list_key: str, timeout: float) -> None:
        """``BLPOP list_key timeout`` on a kept connection, result ignored."""
        packed = [("BLPOP", list_key, timeout)]
        try:
            [result] = await self._send(packed, timeout, list_key)
        except RedisConnectionError:
            [result] = await self._send(packed, timeout, list_key)
        if isinstance(result, ResponseError):
            await self._redirected(result)

    async def _send(
        self, packed: list[tuple[Any, ...]], block: float, key: str | None = None
    ) -> list[Any]:
        """Send commands on one connection; their replies in order, an error
        reply as a :class:`ResponseError` in its place.

        With ``block``, the first command may block the server side that many
        seconds (BLPOP), so the first reply is read with that much more than the
        client's socket timeout, which would otherwise cut long waits short.

        The connection is kept aside for the next call instead of going back to
        the pool: taking one from redis-py's pool (which checks the socket for
        stray data each time) and returning it costs about as much as the rest
        of a call. redis-py disconnects a connection whose send or read fails or
        is cancelled, so a kept connection never holds a stray reply.

        On a cluster the connection comes from the node that holds ``key``.
        """
        if self.cluster:
            return await self._send_to_node(packed, block, key)
        pool: Any = self._redis.connection_pool
        conn = self._spare.pop() if self._spare else None
        if conn is None:
            conn = await pool.get_connection(*_GET_CONNECTION_ARGS)
        ok = False
        try:
            await _write(conn, _pack(conn, packed))
            results = await _read_replies(conn, len(packed), block)
            ok = True
            return results
        except RedisConnectionError:
            await conn.disconnect()
            raise
        finally:
            if ok and len(self._spare) < _SPARE:
                self._spare.append(conn)
            else:
                await pool.release(conn)

    async def _cluster_evalshas(self, calls: Sequence[Call]) -> list[Any]:
        """On a cluster: the calls of each shard in one round trip, the shards at
        once. A call refused with a redirection (its slot moved) or sent to a
        shard that could not be reached goes again through the cluster client,
        which reads the slot map again and follows redirections."""
        by_node: dict[str, list[int]] = {}
        for i, (_, keys, _) in enumerate(calls):
            by_node.setdefault(self._redis.get_node_from_key(keys[0]).name, []).append(
                i
            )
        results: list[Any] = [None] * len(calls)

        async def shard(indices: list[int]) -> None:
            packed = [self._evalsha_command(calls[i]) for i in indices]
            try:
                replies = await self._send_to_node(packed, 0.0, calls[indices[0]][1][0])
            except (RedisConnectionError, RedisTimeoutError) as exc:
                replies = [exc] * len(indices)
            for i, reply in zip(indices, replies, strict=True):
                results[i] = reply

        await asyncio.gather(*(shard(indices) for indices in by_node.values()))
        for i, result in enumerate(results):
            if isinstance(
                result, (RedisConnectionError, RedisTimeoutError, *_REDIRECTIONS)
            ):
                try:
                    results[i] = await self._redis.evalsha(
                        *self._evalsha_command(_second_try(calls[i]))[1:]
                    )
                except ResponseError as exc:
                    results[i] = exc
        return results

    def script(self, name: str) -> tuple[str, str]:
        """The digest and the source of script ``name``."""
        return self._scripts[name].sha, _SOURCES[name]

    def _evalsha_command(self, call: Call) -> tuple[Any, ...]:
        name, keys, args = call
        return ("EVALSHA", self._scripts[name].sha, len(keys), *keys, *args)

    async def _send_to_node(
        self, packed: list[tuple[Any, ...]], block: float, key: str | None
    ) -> list[Any]:
        node = self._redis.get_node_from_key(key)
        conn = node.acquire_connection()
        try:
            await _write(conn, _pack(conn, packed))
            return await _read_replies(conn, len(packed), block)
        except RedisConnectionError:
            await conn.disconnect()
            raise
        finally:
            node.release(conn)

    async def _pipeline(self, calls: Sequence[Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for name, keys, args in calls:
                pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))


async def _read_replies(conn: Any, n: int, block: float) -> list[Any]:
    """The ``n`` replies of commands just sent, an error reply as a
    :class:`ResponseError` in its place; the first may wait ``block`` seconds."""
    results: list[Any] = []
    for i in range(n):
        if i:
            # The replies after the first arrived with it, as a rule: taken
            # from hiredis's reader directly (each read_response is a
            # coroutine, with a timeout scope, around a parse).
            reply = buffered(conn)
            if reply is not PARTIAL:
                results.append(reply)
                continue
        try:
            if i == 0 and block > 0:
                results.append(await conn.read_response(timeout=block + _READ_MARGIN))
            else:
                results.append(await conn.read_response())
        except ResponseError as exc:
            results.append(exc)
    return results


def _pack(conn: Any, commands: list[tuple[Any, ...]]) -> list[bytes]:
    """RESP bytes of ``commands``: hiredis's C packer when it is installed
    (several times faster than redis-py's, which its asyncio client never uses)."""
    if _pack_command is None:
        return list(conn.pack_commands(commands))
    return [b"".join([_pack_command(command) for command in commands])]


async def _write(conn: Any, chunks: list[bytes]) -> None:
    """Write packed commands to a connection.

    redis-py's ``send_packed_command`` wraps every write in ``asyncio.wait_for``
    (a new task per command, on Python < 3.12). A write that the socket takes at
    once needs no timeout, so it goes straight to the stream; only a write left
    in the buffer waits for it, bounded by the socket timeout. A broken socket
    shows as a ConnectionError on the read that follows.
    """
    writer = getattr(conn, "_writer", None)
    if writer is None or not getattr(conn, "is_connected", False):
        await conn.send_packed_command(chunks, False)
        return
    writer.writelines(chunks)
    if writer.transport.get_write_buffer_size():
        try:
            await asyncio.wait_for(writer.drain(), conn.socket_timeout)
        except OSError as exc:  # TimeoutError included
            await conn.disconnect(nowait=True)
            raise RedisConnectionError(f"writing to Redis failed: {exc!r}") from exc
