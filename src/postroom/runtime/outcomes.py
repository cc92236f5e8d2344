"""One log line for each message that did not succeed, as text or JSON lines.

The consumer loop (:class:`~postroom.runtime.runner.QueueRunner`) builds each
failed attempt's record with :func:`failure_of` and calls :func:`log_settled`
once it is recorded: ``retried``
(when and why), ``rejected`` (a ``Reject`` or an undecodable body) or
``dead_lettered`` (attempts used up). The fields travel in the record's
``postroom`` attribute, so :class:`JsonFormatter` writes them as JSON keys and
the text format carries them as ``key=value`` pairs.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..model.errors import Retry
from ..model.message import Delivery, ErrorInfo, QueuePolicy
from ..model.retry import seconds as to_seconds
from ..model.settlement import Failure

if TYPE_CHECKING:
    from .jobs import Outcome

__all__ = [
    "OUTCOME_LOGGER",
    "JsonFormatter",
    "error_line",
    "failure_of",
    "log_outcome",
    "log_settled",
    "settled_event",
    "trace_id",
]

OUTCOME_LOGGER = "postroom.worker.outcomes"
_log = logging.getLogger(OUTCOME_LOGGER)

# The longest error text in a log line (a traceback stays in the dead letter).
MAX_ERROR_CHARS = 500


def trace_id(headers: dict[str, str]) -> str | None:
    """The trace id of a W3C ``traceparent`` header (``00-<trace id>-<span>-<flags>``),
    or ``None`` when there is none or it is malformed."""
    parts = headers.get("traceparent", "").strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32:
        return None
    tid = parts[1].lower()
    if tid == "0" * 32 or any(c not in "0123456789abcdef" for c in tid):
        return None
    return tid


def error_line(error: BaseException | ErrorInfo | str | None) -> str:
    """``Type: message`` on one line, at most :data:`MAX_ERROR_CHARS`."""
    if error is None:
        return ""
    if isinstance(error, ErrorInfo):
        text = f"{error.type}: {error.message}"
    elif isinstance(error, BaseException):
        text = f"{type(error).__qualname__}: {error}"
    else:
        text = str(error)
    text = " ".join(text.split())
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


def _when(seconds: float) -> str:
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_outcome(
    event: str,
    delivery: Delivery,
    *,
    reason: str,
    error: BaseException | ErrorInfo | str | None,
    max_attempts: int,
    delay: float | None = None,
    dead_letter: str | None = None,
) -> None:
    """Log one line: ``event`` is ``retried``, ``rejected`` or ``dead_lettered``;
    ``reason`` why (``retry`` asked by the handler, ``failed``, ``timeout``,
    ``rejected``, ``undecodable``); ``delay`` seconds until a retry."""
    fields: dict[str, Any] = {
        "event": event,
        "queue": delivery.queue,
        "id": delivery.id,
        "attempt": delivery.attempts,
        "max_attempts": max_attempts,
        "reason": reason,
    }
    if delay is not None:
        fields["retry_in"] = round(delay, 3)
        fields["retry_at"] = _when(delay)
    if dead_letter is not None:
        fields["dead_letter_queue"] = dead_letter
    fields["error"] = error_line(error)
    tid = trace_id(delivery.message.headers)
    if tid is not None:
        fields["trace_id"] = tid
    level = logging.INFO if event == "retried" else logging.WARNING
    text = " ".join(f"{k}={_quote(v)}" for k, v in fields.items() if k != "event")
    _log.log(level, "message %s %s", event, text, extra={"postroom": fields})


def failure_of(policy: QueuePolicy, d: Delivery, outcome: Outcome) -> Failure:
    """A failed attempt's outcome as the :class:`Failure` to record: rejected
    (a ``Reject`` or an undecodable body) or failed (``failed``, ``timeout``)
    with its delay, the handler's (``Retry(delay=...)``) else the backoff's, so
    that the log line can say when the message comes back."""
    exc = outcome.error
    if outcome.kind in ("reject", "undecodable"):
        reason = "rejected" if outcome.kind == "reject" else "undecodable"
        return Failure(d, exc, reason)
    fail = "timeout" if outcome.kind == "timeout" else "failed"
    delay = to_seconds(exc.delay) if isinstance(exc, Retry) else None
    if delay is None:
        delay = policy.backoff.delay(d.attempts)
    return Failure(d, exc, fail, delay)


def settled_event(policy: QueuePolicy, f: Failure) -> str:
    """What recording ``f`` makes of its message: ``rejected``, ``dead_lettered``
    (attempts used up) or ``retried``."""
    if f.outcome not in ("failed", "timeout"):
        return "rejected"
    if f.delivery.attempts >= policy.max_attempts:
        return "dead_lettered"
    return "retried"


def log_settled(
    policy: QueuePolicy, f: Failure, kind: str, *, dead_lettered: bool
) -> str:
    """Log one line saying what became of a recorded failure (``kind``: the
    handler's outcome) and return it: ``rejected``, ``retried`` or
    ``dead_lettered``."""
    d, error = f.delivery, f.error
    if f.outcome not in ("failed", "timeout"):
        _log_settled("rejected", d, policy, f.outcome, error)
        return "rejected"
    if dead_lettered:
        _log_settled("dead_lettered", d, policy, f.outcome, error)
        return "dead_lettered"
    why = "retry" if kind == "retry" else f.outcome
    delay = to_seconds(f.delay)
    _log_settled("retried", d, policy, why, error, delay=delay)
    return "retried"


def _log_settled(
    event: str,
    d: Delivery,
    policy: QueuePolicy,
    reason: str,
    error: BaseException | ErrorInfo | str | None,
    *,
    delay: float | None = None,
) -> None:
    log_outcome(
        event,
        d,
        reason=reason,
        error=error,
        max_attempts=policy.max_attempts,
        delay=delay,
        dead_letter=None if event == "retried" else policy.dead_letter,
    )


def _quote(value: Any) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\'):
        return text
    return json.dumps(text, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """JSON lines: ``time`` (UTC, milliseconds), ``level``, ``logger``, ``pid``,
    ``message``, the ``postroom`` fields of an outcome record, and ``exc_info`` as
    ``traceback``."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object on one line."""
        at = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "postroom", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)
