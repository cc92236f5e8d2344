"""One SQS call: who makes it, against which queues; the registry of actions; the
state the endpoint keeps per server process (dead letter sources, move tasks).

Dead letters of a queue whose ``RedrivePolicy`` targets queue ``D`` are kept by
postroom as that source queue's dead letters (inspectable with ``postroom dlq``)
until ReceiveMessage reads ``D``: :meth:`Call.settle` then moves (a batch of)
them onto ``D`` with postroom's atomic redrive, where they are ordinary messages,
as SQS users expect. GetQueueAttributes counts them in ``D``'s
ApproximateNumberOfMessages and PurgeQueue on ``D`` deletes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ...client.core import AsyncClient
from ...model.errors import QueueNotFound
from ...model.message import QueuePolicy
from .._auth import Token
from ._attributes import ACCOUNT, DLQ_MARK, parse_redrive, queue_arn
from ._errors import error

__all__ = ["ACTIONS", "Call", "SqsState", "action"]

Handler = Callable[["Call", dict[str, Any]], Awaitable[dict[str, Any]]]
ACTIONS: dict[str, tuple[str, Handler]] = {}
_SOURCES_TTL = 2.0


def action(name: str, scope: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``AmazonSQS.<name>`` needing ``scope``
    (``send``/``receive``/``admin``, or ``any`` scope at all)."""

    def register(handler: Handler) -> Handler:
        ACTIONS[name] = (scope, handler)
        return handler

    return register


@dataclass(slots=True)
class SqsState:
    """What the endpoint keeps in one server process."""

    sources: dict[str, list[str]] = field(default_factory=dict)
    sources_at: float = -1e9
    tasks: dict[str, Any] = field(default_factory=dict)

    def forget_sources(self) -> None:
        """Recompute the dead letter sources on next use (a policy changed)."""
        self.sources_at = -1e9


@dataclass(slots=True)
class Call:
    """One request: the client, the caller's token, the region and base URL."""

    client: AsyncClient
    state: SqsState
    token: Token | None
    region: str
    base_url: str
    sender: str

    def url(self, queue: str) -> str:
        """The QueueUrl of ``queue``."""
        return f"{self.base_url}/{ACCOUNT}/{quote(queue, safe='')}"

    def arn(self, queue: str) -> str:
        """The ARN of ``queue``."""
        return queue_arn(self.region, queue)

    def cover(self, queue: str) -> None:
        """Raise AccessDenied unless the token's queue patterns cover ``queue``."""
        if self.token is not None and not self.token.matches(queue):
            raise error(
                "AccessDenied",
                f"the token {self.token.label!r} does not cover the queue {queue!r}",
            )

    def visible(self, queue: str) -> bool:
        """Whether the token's patterns cover ``queue`` (always when open)."""
        return self.token is None or self.token.matches(queue)

    def need(self, scope: str) -> None:
        """Raise AccessDenied unless the token has ``scope`` (or admin)."""
        if self.token is not None and not self.token.allows(scope, None):
            raise error(
                "AccessDenied", f"this action needs a token with the {scope!r} scope"
            )

    def queue_name(self, params: dict[str, Any], key: str = "QueueUrl") -> str:
        """The queue named by a QueueUrl parameter (any host), patterns checked."""
        url = params.get(key)
        if not isinstance(url, str) or not url:
            raise error("MissingParameter", f"The request must contain {key}.")
        path = urlsplit(url).path if "://" in url else url
        name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
        if not name:
            raise error("InvalidAddress", f"The address {url} is not valid")
        self.cover(name)
        return name

    async def policy(self, queue: str) -> QueuePolicy:
        """The policy of an existing queue; QueueDoesNotExist otherwise."""
        try:
            return await self.client.queue_policy(queue)
        except QueueNotFound:
            raise error(
                "QueueDoesNotExist", "The specified queue does not exist."
            ) from None

    async def queue(self, params: dict[str, Any]) -> tuple[str, QueuePolicy]:
        """The queue of a QueueUrl parameter and its policy."""
        name = self.queue_name(params)
        return name, await self.policy(name)

    async def dead_letter_sources(self, target: str) -> list[str]:
        """Queues whose RedrivePolicy targets ``target`` (from every queue's
        policy, read again at most every 2 s per process)."""
        state = self.state
        if time.monotonic() - state.sources_at > _SOURCES_TTL:
            found: dict[str, list[str]] = {}
            for name in await self.client.queues():
                try:
                    policy = await self.client.queue_policy(name)
                except QueueNotFound:
                    continue
                redrive = policy.attributes.get("RedrivePolicy")
                parsed = parse_redrive(redrive) if redrive else None
                if parsed is not None:
                    found.setdefault(parsed.target, []).append(name)
            state.sources, state.sources_at = found, time.monotonic()
        return list(state.sources.get(target, ()))

    async def bound_sources(self, queue: str, policy: QueuePolicy) -> list[str]:
        """The sources whose dead letters are bound for ``queue`` (none unless a
        RedrivePolicy ever named it: no scan for other queues)."""
        if DLQ_MARK not in policy.attributes:
            return []
        return await self.dead_letter_sources(queue)

    async def pending_dead(self, queue: str, policy: QueuePolicy) -> int:
        """How many dead letters of the sources are bound for ``queue``."""
        total = 0
        for source in await self.bound_sources(queue, policy):
            with contextlib.suppress(QueueNotFound):
                total += (await self.client.stats(source)).dead  # resolves leases
        return total

    async def settle(self, queue: str, policy: QueuePolicy, limit: int) -> None:
        """Move up to ``limit`` dead letters of each source onto ``queue`` (see
        the module), enough for one receive."""
        for source in await self.bound_sources(queue, policy):
            try:
                if (await self.client.stats(source)).dead:  # resolves leases
                    await self.client.redrive(source, to=queue, limit=limit)
            except QueueNotFound:
                self.state.forget_sources()
