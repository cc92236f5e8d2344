"""HTTP push delivery: POST each message of a push subscription to its endpoint.

A :class:`Pusher` lists the push subscriptions (again every ``refresh`` seconds) and
runs one receive loop per subscription. Each loop leases messages from the
subscription's queue, at most ``concurrency`` at a time, and POSTs each one as a
CloudEvents 1.0 event in binary content mode, signed with the subscription's
secret (see :mod:`postroom.model.signing`). A 2xx answer acks the message; any other
status, a connection error or a timeout is a failed attempt, retried with the
queue's backoff and dead-lettered once ``max_attempts`` is used up, with the status
and the answer's length as the error (and its first bytes for a target named by the
allow-list). Only addresses the egress policy allows are reached (see
:mod:`postroom.runtime.egress`), and redirects are not followed.

Subscriptions never wait for each other: each has its own loop and slots, and the
HTTP connection pool is unbounded (the sum of the slots bounds it), so one slow
endpoint only slows its own subscription. Several pushers may run at once, in one
or many processes: leases make sure each message is with one of them at a time.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import anyio
import httpx

from ..client.core import AsyncClient
from ..model.codec import BYTES_TYPE, CONTENT_TYPE
from ..model.errors import LeaseLost, QueueNotFound
from ..model.message import Delivery, ErrorInfo, Message, Subscription
from ..model.signing import SIGNATURE_HEADER, signature_header
from .egress import EgressPolicy, EgressRefused, EgressTransport, describe_answer

__all__ = ["Pusher", "push_headers", "run_pusher"]

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 10.0
ERROR_BODY_BYTES = 200
_DRAIN_BYTES = 64 * 1024
_MAX_BACKOFF = 30.0

# Message headers that are not passed through to the endpoint: hop-by-hop and
# framing headers (httpx sets them), credentials, and the ones the pusher sets.
_RESERVED = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "cookie",
        "expect",
        "host",
        "keep-alive",
        "postroom-attempt",
        "postroom-subscription",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        SIGNATURE_HEADER.lower(),
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
# CloudEvents HTTP binding 3.1.3.2: printable ASCII except space, '"' and '%'.
_CE_SAFE = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in ' "%')


def _ce(value: str) -> str:
    return quote(value, safe=_CE_SAFE)


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _passes_through(name: str, value: str) -> bool:
    lower = name.lower()
    return (
        lower not in _RESERVED
        and not lower.startswith("ce-")
        and bool(_TOKEN.match(name))
        and bool(_VALUE.match(value))
    )


def push_headers(
    subscription: Subscription, message: Message, *, timestamp: int | None = None
) -> dict[str, str]:
    """The HTTP headers of one push: CloudEvents binary mode plus the signature.

    ``ce-id`` is the message id, ``ce-source`` ``postroom/<topic>``, ``ce-type`` the
    topic and ``ce-time`` the publish time. ``content-type`` is the message's; its
    other headers pass through unchanged when they are valid HTTP headers and not
    reserved (``ce-*``, hop-by-hop, credentials). ``Postroom-Subscription`` and
    ``Postroom-Attempt`` name the subscription and the attempt number.
    """
    headers = {k: v for k, v in message.headers.items() if _passes_through(k, v)}
    headers.update(
        {
            "content-type": message.headers.get(CONTENT_TYPE, BYTES_TYPE),
            "ce-specversion": "1.0",
            "ce-id": _ce(message.id),
            "ce-source": _ce(f"postroom/{subscription.topic}"),
            "ce-type": _ce(subscription.topic),
            "ce-time": _rfc3339(message.enqueued_at),
            "postroom-subscription": _ce(subscription.name),
            "postroom-attempt": str(message.attempts),
        }
    )
    if subscription.secret:
        headers[SIGNATURE_HEADER] = signature_header(
            subscription.secret, message.body, timestamp
        )
    return headers


@dataclass(slots=True)
class _Loop:
    """The receive loop of one push subscription."""

    subscription: Subscription
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    http: httpx.AsyncClient | None = None


class Pusher:
    """Delivers every push subscription of ``client``'s backend to its endpoint.

    ``concurrency`` caps the requests in flight per subscription, ``timeout`` is
    the total time allowed for one request (seconds), ``refresh`` how often the
    subscriptions are listed again, ``poll`` the long-poll wait of each receive.
    ``http`` may be an ``httpx.AsyncClient`` of your own (e.g. with a proxy or
    client certificates), shared by every subscription; by default each
    subscription gets its own, with ``concurrency`` connections: one endpoint's
    slow connections never hold another's, and a small pool stays cheap (an
    httpcore pool spends time linear in its connections on every request).
    ``egress`` says which addresses pushes may reach (default: the policy of
    ``POSTROOM_PUSH_ALLOW``, see :mod:`postroom.runtime.egress`); a client of your
    own is used as it is.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT,
        refresh: float = 2.0,
        poll: float = 1.0,
        http: httpx.AsyncClient | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if timeout <= 0 or refresh <= 0 or poll < 0:
            raise ValueError("timeout and refresh must be > 0, poll >= 0 seconds")
        self.client = client
        self.concurrency = concurrency
        self.timeout = timeout
        self.refresh = refresh
        self.poll = poll
        self._http = http
        self.egress = egress if egress is not None else EgressPolicy.from_env()
        self._loops: dict[tuple[str, str], _Loop] = {}
        self._stopping = False
        self._stop_event = anyio.Event()
        self.delivered = 0
        self.failed = 0
        self.dead_lettered = 0

    @property
    def subscriptions(self) -> list[Subscription]:
        """The push subscriptions being delivered now."""
        return [loop.subscription for loop in self._loops.values()]

    def stop(self) -> None:
        """Stop receiving; :meth:`run` returns once the requests in flight end."""
        self._stopping = True
        self._stop_event.set()

    async def run(self, stop: anyio.Event | None = None) -> None:
        """Deliver until :meth:`stop` is called or ``stop`` is set."""
        try:
            async with anyio.create_task_group() as watcher:
                if stop is not None:
                    watcher.start_soon(self._stop_when, stop)
                async with anyio.create_task_group() as tg:
                    while not self._stopping:
                        await self._discover(tg)
                        with anyio.move_on_after(self.refresh):
                            await self._stop_event.wait()
                watcher.cancel_scope.cancel()
        finally:
            self._loops.clear()

    def _new_http(self) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=self.concurrency,
            max_keepalive_connections=self.concurrency,
        )
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            transport=EgressTransport(self.egress, limits=limits),
            follow_redirects=False,
            headers={"user-agent": "postroom-pusher"},
        )

    async def _stop_when(self, stop: anyio.Event) -> None:
        await stop.wait()
        self.stop()

    async def _discover(self, tg: anyio.abc.TaskGroup) -> None:
        try:
            subs = await self.client.subscriptions()
        except Exception:
            log.exception("pusher: listing subscriptions failed; trying again")
            return
        current = {(s.topic, s.name): s for s in subs if s.push_endpoint}
        for key, loop in list(self._loops.items()):
            if key not in current:
                log.info("pusher: subscription %s:%s is gone", *key)
                loop.scope.cancel()
                del self._loops[key]
        for key, sub in current.items():
            if key in self._loops:
                self._loops[key].subscription = sub  # endpoint or secret may change
            else:
                loop = self._loops[key] = _Loop(sub)
                tg.start_soon(self._consume, loop)

    async def _consume(self, loop: _Loop) -> None:
        loop.http = self._http or self._new_http()
        try:
            with loop.scope:
                await self._receive_loop(loop)
        finally:
            if self._http is None:
                with anyio.CancelScope(shield=True):
                    await loop.http.aclose()

    async def _receive_loop(self, loop: _Loop) -> None:
        slots = anyio.Semaphore(self.concurrency)
        failures = 0
        async with anyio.create_task_group() as tg:
            while not self._stopping:
                await slots.acquire()
                if self._stopping:
                    break
                n = 1
                while n < self.concurrency and slots.value > 0:
                    slots.acquire_nowait()
                    n += 1
                got: list[Delivery] = []
                try:
                    got = await self.client.receive(
                        loop.subscription.queue, max_messages=n, wait=self.poll
                    )
                    failures = 0
                except QueueNotFound:
                    failures = 1  # deleted: the next discovery ends this loop
                except Exception:
                    failures += 1
                    log.exception("pusher: receive failed")
                for d in got:
                    tg.start_soon(self._deliver_in_slot, loop, d, slots)
                for _ in range(n - len(got)):
                    slots.release()
                if failures:
                    await anyio.sleep(min(_MAX_BACKOFF, 0.25 * 2**failures))

    async def _deliver_in_slot(
        self, loop: _Loop, delivery: Delivery, slots: anyio.Semaphore
    ) -> None:
        try:
            assert loop.http is not None
            await self.deliver(loop.subscription, delivery, loop.http)
        finally:
            slots.release()

    async def deliver(
        self, subscription: Subscription, delivery: Delivery, http: httpx.AsyncClient
    ) -> bool:
        """POST one delivery with ``http``; ack it on 2xx, else record a failure.

        Returns whether the endpoint accepted it. Cancelled midway, the message
        is released without counting the attempt.
        """
        try:
            delivery = await self._ensure_lease(delivery)
            error, outcome = await self._post(http, subscription, delivery)
        except (LeaseLost, QueueNotFound):  # taken over, or subscription deleted
            return False
        except Exception:
            log.exception("pusher: %s could not be delivered", delivery.id)
            return False
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._settle(self.client.release([delivery]))
            raise
        if error is None:
            self.delivered += 1
            await self._settle(self.client.ack(delivery))
            return True
        self.failed += 1
        log.info("pusher: %s attempt %d: %s", delivery.id, delivery.attempts, error)
        dead = await self._settle(self.client.fail(delivery, error, outcome=outcome))
        if dead:
            self.dead_lettered += 1
            log.warning("pusher: %s dead-lettered on %s", delivery.id, delivery.queue)
        return False

    async def _ensure_lease(self, delivery: Delivery) -> Delivery:
        """Extend the lease when it could run out during the request."""
        left = delivery.lease_expires_at.timestamp() - time.time()
        if left < self.timeout + 2.0:
            return await self.client.extend(delivery, self.timeout + 5.0)
        return delivery

    @staticmethod
    async def _settle(op: Awaitable[object]) -> bool:
        """Await an ack/fail/release; a lost lease or a vanished queue is logged."""
        try:
            return bool(await op)
        except (LeaseLost, QueueNotFound) as exc:
            log.info("pusher: %s", exc)
        except Exception:
            log.exception("pusher: settling a delivery failed; its lease will expire")
        return False

    async def _post(
        self, http: httpx.AsyncClient, subscription: Subscription, delivery: Delivery
    ) -> tuple[ErrorInfo | None, str]:
        endpoint = subscription.push_endpoint or ""
        headers = push_headers(subscription, delivery.message)
        try:
            with anyio.fail_after(self.timeout):
                async with http.stream(
                    "POST", endpoint, content=delivery.body, headers=headers
                ) as resp:
                    if 200 <= resp.status_code < 300:
                        # drain (so the connection is reused), but not forever
                        await _read_head(resp, _DRAIN_BYTES)
                        return None, "acked"
                    head = await _read_head(resp, ERROR_BODY_BYTES)
        except EgressRefused as exc:
            return ErrorInfo(type="PushRefused", message=str(exc)), "failed"
        except (TimeoutError, httpx.TimeoutException):
            message = f"POST {endpoint} timed out after {self.timeout:g} s"
            return ErrorInfo(type="PushTimeout", message=message), "timeout"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            message = f"POST {endpoint} failed: {type(exc).__name__}: {exc}"
            return ErrorInfo(type="PushConnectionError", message=message), "failed"
        message = f"POST {endpoint} answered {describe_answer(resp, head)}"
        return ErrorInfo(type="PushHTTPError", message=message), "failed"


async def _read_head(resp: httpx.Response, limit: int) -> bytes:
    head = b""
    async for chunk in resp.aiter_bytes():
        head += chunk
        if len(head) >= limit:
            break
    return head[:limit]


async def run_pusher(
    client: AsyncClient | str | None = None,
    *,
    stop: anyio.Event | None = None,
    refresh: float = 2.0,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,
    egress: EgressPolicy | None = None,
) -> None:
    """Deliver every push subscription until ``stop`` is set or the task is cancelled.

    ``client`` is an :class:`AsyncClient` (not closed here) or a URL (``None``:
    ``POSTROOM_URL``, else the SQLite default) for a client opened and closed here.
    ``egress`` as for :class:`Pusher`. Used by ``postroom serve`` and
    ``postroom worker --push``.
    """
    if isinstance(client, AsyncClient):
        pusher = Pusher(
            client,
            concurrency=concurrency,
            timeout=timeout,
            refresh=refresh,
            egress=egress,
        )
        await pusher.run(stop)
        return
    async with AsyncClient(client) as owned:
        await run_pusher(
            owned,
            stop=stop,
            refresh=refresh,
            concurrency=concurrency,
            timeout=timeout,
            egress=egress,
        )
