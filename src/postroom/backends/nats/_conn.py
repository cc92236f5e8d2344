"""One NATS connection with JetStream, and the few requests postroom makes.

nats-py reconnects on its own (forever, every 250 ms) after a server restart.
Requests that fail meanwhile are retried for a short while when that is safe
(publishes carry a ``Nats-Msg-Id``, so a retried one is stored once) and
otherwise raise :class:`BackendError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import PubAck, RawStreamMsg, StreamConfig, StreamInfo

from ...model.errors import BackendError, QueueNotFound
from ._errors import DRIVER_ERRORS, backend_error, is_not_found, translated
from ._inbox import Client, Inbox, Pull, Pulled
from ._records import raw_message
from ._replies import Replies

__all__ = ["Jet", "backend_error", "translated"]

log = logging.getLogger(__name__)

_TIMEOUT = 5.0
_RETRY_FOR = 10.0  # how long a publish waits for a reconnect before failing
_IDLE_CHECK = 1.0  # seconds without traffic after which the connection is checked
_LATE = 0.5  # how long after its expiry a pull request is given up


class Jet:
    """The connection and JetStream context of one backend."""

    def __init__(self, servers: list[str], options: dict[str, Any]) -> None:
        self.servers = servers
        self.where = ",".join(servers)
        self._options = options
        self._nc: Client | None = None
        self._replies: Replies | None = None
        self._js: JetStreamContext | None = None
        self._last_io = time.monotonic()
        self._free: list[Inbox] = []  # inboxes for pulls (see ``_inbox``)

    async def connect(self) -> None:
        """Connect (once); later drops are reconnected by nats-py."""
        if self._nc is not None:
            return
        async with translated(self.where):  # connecting: nothing to check yet
            # As nats.connect, with the client whose read loop feeds inboxes.
            nc = Client()
            options: dict[str, Any] = {
                "servers": self.servers,
                "allow_reconnect": True,
                "max_reconnect_attempts": -1,
                "reconnect_time_wait": 0.25,
                "connect_timeout": 2,
                "error_cb": self._on_error,
                **self._options,
            }
            await nc.connect(**options)
        self._nc, self._js = nc, nc.jetstream(timeout=_TIMEOUT)
        self._replies = Replies(nc)

    @contextlib.asynccontextmanager
    async def _io(self) -> AsyncIterator[None]:
        """One exchange with the server: :meth:`ready` first, errors translated."""
        async with translated(self.where):
            await self.ready()
            yield

    async def ready(self) -> None:
        """After a second without traffic, make sure the connection is alive.

        A client whose event loop was idle (the sync client runs its loop only
        during a call) has not seen a server restart yet: its first request would
        go down the dead socket and time out. So after an idle second, one PING;
        when it fails, wait (up to 10 s) for nats-py's reconnect."""
        now = time.monotonic()
        idle, self._last_io = now - self._last_io, now
        if idle < _IDLE_CHECK:
            return
        nc = self.nc
        await anyio.sleep(0)  # the read loop sees a socket the server closed
        with contextlib.suppress(*DRIVER_ERRORS):
            await nc.flush(timeout=1)
            return
        give_up = time.monotonic() + _RETRY_FOR
        while not nc.is_connected and time.monotonic() < give_up:
            await anyio.sleep(0.05)

    async def _on_error(self, exc: Exception) -> None:
        log.debug("NATS connection error: %s", exc)

    async def close(self) -> None:
        """Drain nothing, close the connection."""
        nc, self._nc, self._js, self._replies = self._nc, None, None, None
        self._free = []
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    @property
    def nc(self) -> Client:
        """The connection (connected)."""
        if self._nc is None:
            raise BackendError("the NATS backend is not connected: call connect()")
        return self._nc

    @property
    def replies(self) -> Replies:
        """The connection's requests with replies read directly (connected)."""
        if self._replies is None:
            raise BackendError("the NATS backend is not connected: call connect()")
        return self._replies

    async def request(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        *,
        at_once: bool = False,
    ) -> bytes:
        """One request (see ``_replies``); its reply's data."""
        data, _ = await self.replies.request(
            subject, payload, headers=headers, timeout=_TIMEOUT, at_once=at_once
        )
        return data

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context (connected)."""
        if self._js is None:
            raise BackendError("the NATS backend is not connected: call connect()")
        return self._js

    # -- streams -------------------------------------------------------------------

    async def ensure_stream(self, config: StreamConfig) -> None:
        """Create a stream, or update it to ``config`` when it exists."""
        async with self._io():
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self.js.update_stream(config)

    async def stream_info(
        self, stream: str, queue: str, subjects_filter: str | None = None
    ) -> StreamInfo:
        """A stream's info; :class:`QueueNotFound` (naming ``queue``) when missing."""
        async with self._io():
            try:
                return await self.js.stream_info(
                    stream, subjects_filter=subjects_filter
                )
            except nats.js.errors.Error as exc:
                if is_not_found(exc):
                    raise QueueNotFound(queue) from exc
                raise

    async def stream_names(self) -> list[str]:
        """Names of every stream on the server."""
        async with self._io():
            resp = await self.api("STREAM.NAMES", {})
            names: list[str] = list(resp.get("streams") or [])
            total, offset = int(resp.get("total", 0)), len(names)
            while offset < total:
                more = await self.api("STREAM.NAMES", {"offset": offset})
                got = list(more.get("streams") or [])
                if not got:
                    break
                names += got
                offset += len(got)
            return names

    async def api(self, call: str, body: dict[str, Any]) -> dict[str, Any]:
        """One ``$JS.API.<call>`` request; its JSON reply."""
        async with self._io():
            data = await self.request(f"$JS.API.{call}", json.dumps(body).encode())
            reply: dict[str, Any] = json.loads(data)
            return reply

    async def delete_stream(self, stream: str) -> None:
        """Delete a stream; a missing one is fine."""
        async with self._io():
            try:
                await self.js.delete_stream(stream)
            except nats.js.errors.Error as exc:
                if not is_not_found(exc):
                    raise

    async def purge(self, stream: str, queue: str, subject: str | None = None) -> int:
        """Purge a stream (or one subject of it); how many messages went."""
        body: dict[str, Any] = {"filter": subject} if subject else {}
        resp = await self.api(f"STREAM.PURGE.{stream}", body)
        if "error" in resp:
            if int(resp["error"].get("code", 0)) == 404:
                raise QueueNotFound(queue)
            raise BackendError(f"purging {stream} failed: {resp['error']}")
        return int(resp.get("purged", 0))

    # -- messages ------------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        body: bytes,
        headers: dict[str, str],
        *,
        stream: str,
        queue: str,
        at_once: bool = False,
    ) -> PubAck:
        """Store one message and wait for the stream's ack (``at_once``: a lone
        publish, written to the socket at once).

        While the connection is down (a server restart) the publish is retried
        for a while; the ``Nats-Msg-Id`` header keeps a retried one from being
        stored twice. No stream for ``subject`` raises :class:`QueueNotFound`.
        """
        give_up = time.monotonic() + _RETRY_FOR
        while True:
            try:
                await self.ready()
                return await self._store(subject, body, headers, at_once)
            except nats.js.errors.NoStreamResponseError as exc:
                if self.nc.is_connected and await self._missing(stream, queue):
                    raise QueueNotFound(queue) from exc
                failure: BaseException = exc
            except nats.js.errors.APIError as exc:
                raise BackendError(
                    f"NATS refused a message on {queue!r}: {exc}"
                ) from exc
            except DRIVER_ERRORS as exc:
                failure = exc
            if time.monotonic() > give_up:
                async with translated(self.where):
                    raise failure
            await anyio.sleep(0.1)

    async def _store(
        self, subject: str, body: bytes, headers: dict[str, str], at_once: bool
    ) -> PubAck:
        """As nats-py's ``js.publish``, through :attr:`replies`."""
        try:
            data = await self.request(subject, body, headers, at_once=at_once)
        except nats.errors.NoRespondersError:
            raise nats.js.errors.NoStreamResponseError from None
        resp = json.loads(data)
        if "error" in resp:
            nats.js.errors.APIError.from_error(resp["error"])  # raises
        return PubAck.from_response(resp)

    async def _missing(self, stream: str, queue: str) -> bool:
        try:
            await self.stream_info(stream, queue)
        except QueueNotFound:
            return True
        except BackendError:
            return False
        return False

    async def get(
        self, stream: str, subject: str, *, seq: int = 0, last: bool = False
    ) -> RawStreamMsg | None:
        """The last message on ``subject`` (``last``), or the first one at or
        after ``seq``; ``None`` when there is none."""
        body: dict[str, Any] = (
            {"last_by_subj": subject} if last else {"seq": seq, "next_by_subj": subject}
        )
        async with self._io():
            try:
                data = await self.request(
                    f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps(body).encode()
                )
            except nats.errors.NoRespondersError:
                raise nats.js.errors.ServiceUnavailableError from None
            resp = json.loads(data)
            if "error" in resp:
                if int(resp["error"].get("code", 0)) == 404:
                    return None
                nats.js.errors.APIError.from_error(resp["error"])  # raises
            return raw_message(resp["message"])

    async def delete_msg(self, stream: str, seq: int) -> None:
        """Remove one stored message; a missing one is fine."""
        async with self._io():
            try:
                await self.js.delete_msg(stream, seq)
            except nats.js.errors.Error as exc:
                if not is_not_found(exc):
                    raise

    async def pull(
        self,
        stream: str,
        consumer: str,
        batch: int,
        *,
        hold: float = 0.0,
        each: Callable[[Pulled], None] | None = None,
    ) -> list[Pulled]:
        """Up to ``batch`` messages of a durable pull consumer: one ``no_wait``
        pull request, which the server ends once it has delivered what is
        stored (a 404 or 408 status).

        Without ``hold`` the server answers "none" (404) from a count of pending
        messages that its stream updates a moment after the publish's ack, so a
        message stored just before can be missed. With ``hold`` (seconds) it does
        not answer from that count: it waits up to that long, reading the stream
        itself, and ends the request as soon as it has delivered something and
        found no more (a consumer waiting for messages holds it that long). The
        request is read to its end, so that no message is delivered to nobody.
        With ``each``, every message is handed to it as it comes (none returned).
        """
        body: dict[str, Any] = {"batch": batch, "no_wait": True}
        if hold > 0:
            body["expires"] = int(hold * 1e9)
        async with self._io():
            nc = self.nc
            inbox = self._free.pop() if self._free else await Inbox(nc).open()
            pull = inbox.pull = Pull(stream, consumer, batch, each)
            # A request that the server did not end by its expiry (nats-server
            # 2.9.10 loses one now and then under load) is over a little later.
            wait = hold + _LATE if hold else _TIMEOUT
            try:
                await nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                    json.dumps(body).encode(),
                    reply=inbox.subject,
                )
                nc.write_now()  # a lone request (with the acks before it)
                async with asyncio.timeout(wait):
                    await pull.done.wait()
            except TimeoutError:
                if not hold or not nc.is_connected:
                    raise nats.errors.TimeoutError from None
                log.debug("a pull request on %s was not ended", stream)
            finally:
                inbox.pull = None
                if pull.over and self._nc is nc:
                    self._free.append(inbox)
                else:
                    await inbox.close()
            if pull.error is not None:
                raise pull.error
            return pull.out

    async def ack_all(self, replies: Sequence[str]) -> None:
        """``+ACK`` many deliveries of one consumer: all but the last as plain
        publishes, the last as a request. A consumer processes its acks in order,
        so the last one's answer means that every one was processed."""
        if not replies:
            return
        async with self._io():
            nc = self.nc
            for reply in replies[:-1]:
                await nc.publish(reply, b"+ACK")
            await self.request(replies[-1], b"+ACK", at_once=True)

    async def mark(self, subject: str) -> None:
        """Store an empty message on ``subject`` (a stream's ack awaited); a
        failure is logged, not raised: a mark only corrects ``stats``."""
        try:
            async with self._io():
                await self.request(subject, b"")
        except BackendError as exc:
            log.debug("marking %s failed: %s", subject, exc)

    async def unmark(self, stream: str, subject: str) -> None:
        """Purge ``subject`` of ``stream``; a failure is logged, not raised."""
        try:
            resp = await self.api(f"STREAM.PURGE.{stream}", {"filter": subject})
        except BackendError as exc:
            resp = {"error": str(exc)}
        if "error" in resp:
            log.debug("unmarking %s failed: %s", subject, resp["error"])

    async def ack(self, reply: str, payload: bytes = b"+ACK") -> None:
        """Send an acknowledgement (``+ACK``, ``-NAK``, ``+WPI``...) and wait until
        the server has processed it."""
        async with self._io():
            await self.request(reply, payload, at_once=True)
