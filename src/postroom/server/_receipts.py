"""The HTTP receipt: an opaque token from which the server rebuilds a Delivery.

``ack``/``retry``/``reject``/``extend`` need what the backend handed out on
receive: the backend's receipt, the queue, the attempt count (to decide between
retry and dead letter) and the consumer (for the attempt history). The HTTP
receipt carries them as URL-safe base64 (unpadded) of a compact JSON object
``{"q": queue, "i": message id, "r": backend receipt, "a": attempts,
"c": consumer, "t": leased at (ms)}``, and ``"g": group`` for a message of a FIFO
group (an ack lets the group's next message out: backends that read the group from
the delivery get it back). It is not signed: the backend receipt
inside is the lease's secret, so a client can only act on messages it holds,
and changing ``a`` only changes how soon a message it could reject anyway goes
to the dead letter queue.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..model import validate
from ..model.message import Delivery, Message, from_ms
from ._json import check_value, loads

__all__ = ["HttpReceipt", "InvalidReceipt"]


class InvalidReceipt(ValueError):
    """The receipt sent by a client is not one this server issued."""


@dataclass(frozen=True, slots=True)
class HttpReceipt:
    """What the server needs to act on a delivery a client holds."""

    queue: str
    message_id: str
    receipt: str
    attempts: int
    consumer: str
    leased_at_ms: int
    group: str | None = None

    @classmethod
    def from_delivery(cls, delivery: Delivery, leased_at_ms: int) -> HttpReceipt:
        """The receipt of a delivery that was leased at ``leased_at_ms``."""
        return cls(
            delivery.queue,
            delivery.id,
            delivery.receipt,
            delivery.attempts,
            delivery.consumer,
            leased_at_ms,
            delivery.message.group,
        )

    def encode(self) -> str:
        """The opaque string handed to HTTP clients."""
        data = {
            "q": self.queue,
            "i": self.message_id,
            "r": self.receipt,
            "a": self.attempts,
            "c": self.consumer,
            "t": self.leased_at_ms,
        }
        if self.group is not None:
            data["g"] = self.group
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> HttpReceipt:
        """Parse a receipt; raises :class:`InvalidReceipt`."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data: Any = loads(raw)
            out = cls(
                queue=_typed(data, "q", str),
                message_id=_typed(data, "i", str),
                receipt=_typed(data, "r", str),
                attempts=_typed(data, "a", int),
                consumer=_typed(data, "c", str),
                leased_at_ms=_typed(data, "t", int),
                group=_group(data),
            )
        except (binascii.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidReceipt(
                "malformed receipt: send back the 'receipt' string exactly as "
                "the receive call returned it"
            ) from exc
        return out

    def delivery(self) -> Delivery:
        """A Delivery carrying what backends use: receipt, queue, id, attempts."""
        epoch = from_ms(0)
        message = Message(
            id=self.message_id,
            queue=self.queue,
            body=b"",
            headers={},
            enqueued_at=epoch,
            available_at=epoch,
            attempts=self.attempts,
            group=self.group,
        )
        return Delivery(message, self.receipt, epoch, self.consumer)


def _group(data: Any) -> str | None:
    if "g" not in data:
        return None
    return validate.name(_typed(data, "g", str), "group")


# Integers a receipt may hold: what JSON carries exactly, never negative.
_MAX_INT = 2**53 - 1


def _typed(data: Any, key: str, kind: type) -> Any:
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key} is not a {kind.__name__}")
    if isinstance(value, int) and not 0 <= value <= _MAX_INT:
        raise ValueError(f"{key} is out of range")
    if isinstance(value, str):
        check_value(value)  # a lone surrogate would poison the attempt history
    return value
