"""HTTP push delivery: POST each message of a push subscription to its endpoint.

A :class:`Pusher` lists the push subscriptions (again every ``refresh`` seconds) and
runs one :class:`~postroom.runtime.runner.QueueRunner` per subscription, whose
handler is an HTTP POST: the runner leases messages from the subscription's queue,
at most ``concurrency`` at a time, keeps their leases and records the outcomes, as
it does for a worker's handlers. Each message is POSTed as a CloudEvents 1.0 event
in binary content mode, signed with the subscription's secret (see
:mod:`postroom.model.signing`). A 2xx answer acks the message; any other status, a
connection error or a timeout is a failed attempt, retried with the queue's
backoff and dead-lettered once ``max_attempts`` is used up, with the status and
the answer's length as the error (and its first bytes for a target named by the
allow-list). Only addresses the egress policy allows are reached (see
:mod:`postroom.runtime.egress`), and redirects are not followed.

Subscriptions never wait for each other: each has its own runner and slots, and
its own HTTP connection pool, so one slow endpoint only slows its own
subscription. Several pushers may run at once, in one or many processes: leases
make sure each message is with one of them at a time.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import anyio
import httpx

from ..client.core import AsyncClient
from ..model import tracing
from ..model.codec import BYTES_TYPE, CONTENT_TYPE
from ..model.errors import QueueNotFound
from ..model.message import Delivery, ErrorInfo, Message, QueuePolicy, Subscription
from ..model.signing import SIGNATURE_HEADER, signature_header
from .app import HandlerSpec
from .egress import EgressPolicy, EgressRefused, EgressTransport, describe_answer
from .jobs import AttemptFailed
from .runner import POLL_SECONDS, QueueRunner

__all__ = ["Pusher", "push_headers", "run_pusher"]

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 10.0
ERROR_BODY_BYTES = 200
_DRAIN_BYTES = 64 * 1024

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
    content_type = message.headers.get(CONTENT_TYPE, BYTES_TYPE)
    if not _VALUE.match(content_type):  # e.g. a CR LF: no valid HTTP header
        content_type = BYTES_TYPE
    headers.update(
        {
            "content-type": content_type,
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
class _Endpoint:
    """One push subscription's handler: POST a delivery to its endpoint."""

    subscription: Subscription
    http: httpx.AsyncClient
    timeout: float
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    runner: QueueRunner | None = None

    async def post(self, delivery: Delivery) -> None:
        """POST ``delivery``; raise :class:`AttemptFailed` unless answered 2xx."""
        error, outcome = await self._post(delivery)
        if error is not None:
            raise AttemptFailed(error, outcome)

    async def _post(self, delivery: Delivery) -> tuple[ErrorInfo | None, str]:
        subscription, http = self.subscription, self.http
        endpoint = subscription.push_endpoint or ""
        headers = push_headers(subscription, delivery.message)
        # The receiver continues the trace from this push's consumer span.
        headers.update(tracing.inject({}) or {})
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


class Pusher:
    """Delivers every push subscription of ``client``'s backend to its endpoint.

    ``concurrency`` caps the requests in flight per subscription, ``timeout`` is
    the total time allowed for one request (seconds), ``refresh`` how often the
    subscriptions are listed again, ``poll`` the longest idle wait of each
    subscription's runner (it wakes earlier when messages arrive).
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
        self._loops: dict[tuple[str, str], _Endpoint] = {}
        self._stopping = False
        self._stop_event = anyio.Event()

    @property
    def subscriptions(self) -> list[Subscription]:
        """The push subscriptions being delivered now."""
        return [loop.subscription for loop in self._loops.values()]

    def stop(self) -> None:
        """Stop receiving; :meth:`run` returns once the requests in flight end."""
        self._stopping = True
        self._stop_event.set()
        for loop in self._loops.values():
            if loop.runner is not None:
                loop.runner.wake()

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
                http = self._http or self._new_http()
                loop = self._loops[key] = _Endpoint(sub, http, self.timeout)
                tg.start_soon(self._consume, key, loop)

    async def _consume(self, key: tuple[str, str], loop: _Endpoint) -> None:
        try:
            with loop.scope:
                loop.runner = await self._runner(loop)
                if self._stopping:
                    return
                await loop.runner.serve()
        except QueueNotFound:
            pass  # deleted meanwhile: the next discovery forgets it
        finally:
            if self._loops.get(key) is loop:
                del self._loops[key]  # discovered again if it still exists
            if self._http is None:
                with anyio.CancelScope(shield=True):
                    await loop.http.aclose()

    async def _runner(self, loop: _Endpoint) -> QueueRunner:
        sub = loop.subscription
        spec = HandlerSpec(
            queue=sub.queue,
            func=loop.post,
            concurrency=self.concurrency,
            timeout=None,  # the POST has its own (``timeout``)
            is_async=True,
            body_type=Delivery,
            topic=sub.topic,
            subscription=sub.name,
        )
        return QueueRunner(
            spec=spec,
            client=self.client,
            concurrency=self.concurrency,
            policy=await self.client.queue_policy(sub.queue),
            is_stopping=lambda: self._stopping,
            on_job_left=lambda: None,
            prepare=_gone,
            poll=self.poll or POLL_SECONDS,
        )


async def _gone() -> QueuePolicy | None:
    """A push subscription's queue is never recreated by the pusher."""
    return None


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
