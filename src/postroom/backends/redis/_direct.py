"""Script calls from the caller's own thread: the sync client's single sends.

An asyncio round trip costs this machine's client about twice a blocking one
(the event loop's wake-ups, its task and future per call), so a ``send`` of the
sync client goes down a blocking redis-py connection instead, running the same
enqueue script with the same arguments as the async path. The connections are
opened on first use. One of them is kept out of redis-py's pool for the calls
of one thread at a time (taking a connection from the pool and giving it back
costs about as much as the rest of a call); a call made while another thread
holds it takes one from the pool, which serves every thread.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.exceptions
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ._translate import backend_error

__all__ = ["PARTIAL", "DirectCalls", "buffered", "buffered_replies"]

_pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack_command
except ImportError:  # hiredis is optional: redis-py packs then
    _pack_command = None


try:  # what redis-py's hiredis reader returns for "not all there yet"
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as PARTIAL
except ImportError:  # pragma: no cover - other redis-py versions
    PARTIAL = False


def buffered(conn: Any) -> Any:
    """The next reply on ``conn`` if hiredis's reader holds it whole, else
    ``PARTIAL``: replies that arrived with the one just read cost a parse,
    not another read_response. Raised where redis-py raises it (a connection
    error); always ``PARTIAL`` with RESP3 (where ``False`` is a reply) or
    without hiredis."""
    reader = getattr(getattr(conn, "_parser", None), "_reader", None)
    if reader is None or str(getattr(conn, "protocol", 2)) == "3":
        return PARTIAL
    reply = reader.gets()
    if reply is False:
        return PARTIAL
    first = reply[0] if isinstance(reply, list) and reply else None
    for error in (reply, first):
        if isinstance(error, redis.exceptions.ConnectionError):
            raise error
    return reply


def buffered_off(conn: Any) -> bool:
    """Whether :func:`buffered_replies` cannot take replies from ``conn``'s
    reader: no hiredis reader, or RESP3 (where ``False`` is a reply)."""
    reader = getattr(getattr(conn, "_parser", None), "_reader", None)
    return reader is None or str(getattr(conn, "protocol", 2)) == "3"


def buffered_replies(conn: Any, limit: int) -> list[Any]:
    """Up to ``limit`` replies on ``conn`` that hiredis's reader holds whole, in
    order (what :func:`buffered` takes one at a time)."""
    return [] if buffered_off(conn) else _taken(conn._parser._reader, limit)


def _taken(reader: Any, limit: int) -> list[Any]:
    """Up to ``limit`` whole replies from a hiredis reader (see above)."""
    out: list[Any] = []
    gets, error_type = reader.gets, redis.exceptions.ConnectionError
    while len(out) < limit:
        reply = gets()
        if type(reply) is not bytes:  # a status or bulk reply needs no look
            if reply is False or reply is PARTIAL:
                break
            first = reply[0] if type(reply) is list and reply else None
            for error in (reply, first):
                if isinstance(error, error_type):
                    raise error
        out.append(reply)
    return out


# A blocking read of a reply puts the thread to sleep and wakes it when the reply
# comes: on loopback or a LAN that sleep and wake-up cost more than the server's
# work (measured on loopback: 7,600 sends/s and 84 us of CPU each when they
# block; 14,000 and 69 us when they poll). So a send first polls its socket this
# long without sleeping; a send whose reply did not come in time makes the next
# SPIN_SKIP sends block at once (a server far away costs one spin in
# SPIN_SKIP + 1 sends, not one in every send).
SPIN_SECONDS = 100e-6
SPIN_SKIP = 8
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_READV = hasattr(os, "readv")


class Spin:
    """Whether the next sends poll for their replies before they sleep."""

    def __init__(self) -> None:
        self.skip = 0

    def read(self, sock: socket.socket, parser: Any) -> bool:
        """Feed ``parser`` what ``sock`` receives within :data:`SPIN_SECONDS`,
        without sleeping; whether anything came. Plain TCP or Unix sockets only
        (a TLS socket's bytes are not the replies)."""
        if self.skip:
            self.skip -= 1
            return False
        buffer = getattr(parser, "_buffer", None)
        if buffer is None or type(sock) is not socket.socket:
            return False
        # A socket with a timeout polls before every read, even a non-blocking
        # one, but its descriptor is non-blocking: read that instead.
        fd, timeout = sock.fileno(), sock.gettimeout()
        if not (_READV if timeout is not None else _DONTWAIT):
            return False  # a platform without them (Windows)
        clock = time.perf_counter
        deadline = clock() + SPIN_SECONDS
        while True:
            try:
                if timeout is None:
                    n = sock.recv_into(buffer, 0, _DONTWAIT)
                else:
                    n = os.readv(fd, [buffer])
            except BlockingIOError:
                if clock() < deadline:
                    continue
                self.skip = SPIN_SKIP
                return False
            if not n:
                raise redis.exceptions.ConnectionError("Connection closed by server.")
            parser._reader.feed(buffer, 0, n)
            return True


def _pack(conn: Any, command: tuple[Any, ...]) -> list[bytes]:
    if _pack_command is None:
        return list(conn.pack_command(*command))
    return [_pack_command(command)]


class DirectCalls:
    """Blocking EVALSHA calls on a Redis server, for threads without a loop."""

    def __init__(self, url: str, where: str) -> None:
        self._url = url
        self.where = where
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()
        # The kept connection, the process that opened it, and who uses it now.
        self._kept: Any = None
        self._kept_pid = 0
        self._kept_lock = threading.Lock()
        self._spin = Spin()

    def _redis(self) -> redis.Redis:
        with self._lock:
            if self._client is None:
                # A connection the server closed is reopened and the call sent
                # again (every script sent this way stores an id only once).
                self._client = redis.Redis.from_url(
                    self._url,
                    decode_responses=False,
                    # RESP2, where buffered() can take replies from the reader
                    # (redis-py >= 8 speaks RESP3 unless told otherwise).
                    protocol=2,
                    retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
                    retry_on_error=[
                        redis.exceptions.ConnectionError,
                        redis.exceptions.TimeoutError,
                    ],
                )
            return self._client

    def evalsha(
        self, sha: str, source: str, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Run a script by its digest (loading it first when the server lost
        it); an error reply is raised as redis-py's ``ResponseError``, any other
        driver error as :class:`~postroom.BackendError`."""
        command = ("EVALSHA", sha, len(keys), *keys, *args)
        try:
            try:
                return self._call(command)
            except redis.exceptions.NoScriptError:
                self._call(("SCRIPT", "LOAD", source))
                return self._call(command)
        except redis.exceptions.ResponseError:
            raise
        except (redis.exceptions.RedisError, OSError) as exc:
            raise backend_error(exc, self.where) from exc

    def commands(self, commands: Sequence[tuple[Any, ...]]) -> list[Any] | None:
        """Send commands in one round trip; their replies in order (an error
        reply in its place), or ``None`` when the connection broke (they may
        have run: they are not sent again). Other driver errors are raised as
        :class:`~postroom.BackendError`."""
        if _pack_command is not None:
            data = b"".join([_pack_command(command) for command in commands])
            return self.packed(data, len(commands))
        return self._on_a_connection(lambda conn: _replies(conn, commands))

    def packed(self, data: bytes, count: int) -> list[Any] | None:
        """:meth:`commands` of ``count`` commands packed in RESP as ``data``."""
        spin = self._spin
        return self._on_a_connection(
            lambda conn: _packed_replies(conn, data, count, spin)
        )

    def _on_a_connection(self, call: Callable[[Any], list[Any]]) -> list[Any] | None:
        try:
            if not self._kept_lock.acquire(blocking=False):
                pool = self._redis().connection_pool
                conn = pool.get_connection()
                try:
                    return call(conn)
                finally:
                    pool.release(conn)
            try:
                return call(self._kept_conn())
            finally:
                self._kept_lock.release()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return None
        except (redis.exceptions.RedisError, OSError) as exc:
            raise backend_error(exc, self.where) from exc

    def _kept_conn(self) -> Any:
        """The kept connection (the caller holds its lock)."""
        if self._kept is None or self._kept_pid != os.getpid():
            # First use, or a forked child: the parent's socket is not ours.
            self._kept = self._redis().connection_pool.make_connection()
            self._kept_pid = os.getpid()
        return self._kept

    def _call(self, command: tuple[Any, ...]) -> Any:
        """One command down the kept connection (a pooled one while another
        thread uses it), packed by hiredis when it is installed (redis-py's own
        command path costs several times more)."""
        if not self._kept_lock.acquire(blocking=False):
            return self._pooled(command)
        try:
            return _roundtrip(self._kept_conn(), command)
        finally:
            self._kept_lock.release()

    def _pooled(self, command: tuple[Any, ...]) -> Any:
        pool = self._redis().connection_pool
        conn: Any = pool.get_connection()
        try:
            return _roundtrip(conn, command)
        finally:
            pool.release(conn)

    def close(self) -> None:
        """Close the connections (opened again on the next call)."""
        with self._kept_lock:
            kept, self._kept = self._kept, None
            if kept is not None and self._kept_pid == os.getpid():
                kept.disconnect()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _replies(conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Send commands; read all their replies (see :func:`_packed_replies`)."""
    chunks = [chunk for command in commands for chunk in _pack(conn, command)]
    return _packed_replies(conn, b"".join(chunks), len(commands))


def _packed_replies(
    conn: Any, data: bytes, count: int, spin: Spin | None = None
) -> list[Any]:
    """Send ``count`` commands packed as ``data``; read all their replies (so
    that none is left on the connection), an error reply in its place.

    On a connected RESP2 connection with hiredis's reader, straight down its
    socket and from its reader (redis-py's send and read wrappers cost about
    an eighth of a send's round trip); a connection that fails is closed, as
    redis-py closes it, with redis-py's errors."""
    parser: Any = getattr(conn, "_parser", None)
    sock = getattr(conn, "_sock", None)
    if sock is None or not hasattr(parser, "read_from_socket") or buffered_off(conn):
        return _read_by_driver(conn, data, count)
    reader = parser._reader
    try:
        sock.sendall(data)
        out: list[Any] = []
        if spin is not None and spin.read(sock, parser):
            out += _taken(reader, count)
        while len(out) < count:
            parser.read_from_socket()
            out += _taken(reader, count - len(out))
    except BaseException as exc:
        conn.disconnect()
        if isinstance(exc, socket.timeout):
            raise redis.exceptions.TimeoutError(f"Redis timed out: {exc}") from exc
        if isinstance(exc, OSError):
            raise redis.exceptions.ConnectionError(f"Redis connection: {exc}") from exc
        raise
    return out


def _read_by_driver(conn: Any, data: bytes, count: int) -> list[Any]:
    """:func:`_packed_replies` through redis-py's own send and read."""
    conn.send_packed_command([data], check_health=False)
    out: list[Any] = []
    while len(out) < count:
        try:
            out.append(conn.read_response())
        except redis.exceptions.ResponseError as exc:
            out.append(exc)
        # The replies after the one read arrived with it, as a rule: taken
        # from hiredis's reader directly (redis-py's read_response costs
        # several times the parse), or read from the socket when they did not.
        out += buffered_replies(conn, count - len(out))
    return out


def _roundtrip(conn: Any, command: tuple[Any, ...]) -> Any:
    """Send one command and read its reply; sent once more, on a new
    connection, when the first one broke (a connection the server closed)."""
    for again in (False, True):
        try:
            conn.send_packed_command(_pack(conn, command), check_health=again)
            return conn.read_response()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            conn.disconnect()
            if again:
                raise
    raise AssertionError("unreachable")
