"""Settling a batch: acks, failed attempts and the next claim in one call.

A consumer's steady state records the outcome of the handlers that finished and
leases as many new messages. :class:`Failure` and :class:`Settled` are what
:meth:`AsyncClient.settle <postroom.AsyncClient.settle>` takes and returns;
:class:`Settlement` is what the client hands to
:meth:`Backend.settle <postroom.Backend.settle>`, with each failed attempt
already decided (a retry after a delay, or a dead letter) and its history entry
built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from .message import Delivery, ErrorInfo, HistoryEntry

__all__ = ["Burial", "Claim", "Failure", "Rerun", "Settled", "Settlement"]


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt to record with :meth:`AsyncClient.settle`.

    ``outcome`` ``failed`` or ``timeout``: the message is retried after ``delay``
    seconds (``None``: the queue's backoff), or dead-lettered with that reason
    once its attempts are used up. A dead letter reason (``rejected``,
    ``undecodable``, ...): dead-lettered at once.
    """

    delivery: Delivery
    error: BaseException | ErrorInfo | str | None = None
    outcome: str = "failed"
    delay: float | timedelta | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """What :meth:`AsyncClient.settle` did.

    ``lost``: the acks and failures whose lease was lost (nothing was done for
    them); ``dead_lettered``: the failures moved to the dead letters (the others
    not lost were retried); ``received``: the messages leased.
    """

    lost: list[Delivery] = field(default_factory=list)
    dead_lettered: list[Delivery] = field(default_factory=list)
    received: list[Delivery] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rerun:
    """A failed attempt retried: the message is visible again after ``delay_ms``."""

    delivery: Delivery
    delay_ms: int
    entry: HistoryEntry


@dataclass(frozen=True, slots=True)
class Burial:
    """A failed attempt whose message moves to the dead letters with ``reason``."""

    delivery: Delivery
    reason: str
    entry: HistoryEntry


@dataclass(frozen=True, slots=True)
class Claim:
    """The arguments of :meth:`Backend.claim <postroom.Backend.claim>`."""

    queue: str
    max_messages: int
    lease_ms: int
    consumer: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """One batch for :meth:`Backend.settle <postroom.Backend.settle>`: acks,
    retries and dead letters (any queues), then an optional claim."""

    acks: Sequence[Delivery] = ()
    reruns: Sequence[Rerun] = ()
    burials: Sequence[Burial] = ()
    claim: Claim | None = None

    @property
    def writes(self) -> int:
        """How many deliveries the batch settles."""
        return len(self.acks) + len(self.reruns) + len(self.burials)
