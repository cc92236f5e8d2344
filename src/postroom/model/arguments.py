"""The arguments of each public client operation, checked in one call.

Every public method of :class:`~postroom.AsyncClient` starts with one of these
(the sync :class:`~postroom.Client`, the worker, the CLI and the HTTP server reach
the backend only through those methods), so a call is refused with
:class:`~postroom.InvalidArgument` before any backend sees it. The primitive
checks and the limits are in :mod:`postroom.model.validate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import validate as v
from .errors import InvalidArgument
from .message import DEAD_REASONS, Delivery, ErrorInfo

__all__ = [
    "check_backoff",
    "check_dead_letter",
    "check_dead_letters",
    "check_declare",
    "check_deliveries",
    "check_delivery",
    "check_durations",
    "check_error",
    "check_extend",
    "check_fail",
    "check_handler",
    "check_names",
    "check_order",
    "check_peek",
    "check_publish",
    "check_purge",
    "check_receive",
    "check_redrive",
    "check_reject",
    "check_send",
    "check_send_many",
    "check_settle",
    "check_subscription",
    "check_subscription_ref",
    "check_worker",
]

FAIL_OUTCOMES = ("failed", "timeout")


def check_backoff(backoff: Any, arg: str = "backoff") -> None:
    """``None`` or a :class:`~postroom.Backoff` (whose fields it checks itself)."""
    from .retry import Backoff

    if backoff is not None and not isinstance(backoff, Backoff):
        raise InvalidArgument(
            f"{arg} must be a postroom.Backoff, got a {type(backoff).__name__}: "
            "e.g. Backoff(initial=1.0, factor=2.0, max=300.0)"
        )


def check_declare(
    queue: Any,
    max_attempts: Any,
    visibility_timeout: Any,
    backoff: Any,
    dead_letter: Any,
    dedup_window: Any,
    rate_limit: Any = None,
) -> None:
    """``declare_queue``'s arguments."""
    v.name(queue)
    v.rate_limit(rate_limit)
    v.attempts(max_attempts)
    v.lease(visibility_timeout)
    check_backoff(backoff)
    v.optional_name(dead_letter, "dead_letter")
    v.delay(dedup_window, "dedup_window")
    if dedup_window is None:
        raise InvalidArgument("dedup_window must be seconds from 0 to 14 days")


# Queue names found valid, not checked again (bounded: emptied when full).
_KNOWN: set[str] = set()


def queue_name(queue: Any) -> None:
    """``validate.name(queue)``, remembered: the sends and receives of a queue
    check its name once."""
    if type(queue) is not str or queue not in _KNOWN:
        v.name(queue)
        if len(_KNOWN) >= 4096:
            _KNOWN.clear()
        _KNOWN.add(queue)


def check_send(queue: Any, delay: Any, headers: Any, dedup_key: Any) -> None:
    """``send``'s arguments but the body (checked as it is encoded)."""
    queue_name(queue)
    v.delay(delay)
    v.headers(headers)
    v.text(dedup_key, "dedup_key")


def check_order(group: Any, priority: Any) -> None:
    """A send's ``group`` and ``priority``."""
    v.optional_name(group, "group")  # a group key follows the rules of names
    v.priority(priority)


def check_send_many(queue: Any, bodies: Any, delay: Any, headers: Any) -> None:
    """``send_many``'s arguments but each body."""
    v.name(queue)
    if isinstance(bodies, (str, bytes, bytearray, memoryview, Mapping)) or not (
        isinstance(bodies, Iterable)
    ):
        raise InvalidArgument(
            f"bodies must be an iterable of message bodies, got a "
            f"{type(bodies).__name__}: e.g. send_many(queue, [body1, body2])"
        )
    v.delay(delay)
    v.headers(headers)


def check_receive(
    queue: Any, max_messages: Any, visibility_timeout: Any, wait: Any
) -> None:
    """``receive``'s arguments."""
    queue_name(queue)
    v.count(max_messages, "max_messages", 1, v.MAX_BATCH)
    v.optional_lease(visibility_timeout)
    v.wait(wait)


def check_delivery(delivery: Any, arg: str = "delivery") -> Delivery:
    """A :class:`~postroom.Delivery` as ``receive`` returned it."""
    if not isinstance(delivery, Delivery):
        raise InvalidArgument(
            f"{arg} must be a postroom.Delivery returned by receive(), got a "
            f"{type(delivery).__name__}"
        )
    return delivery


def check_deliveries(deliveries: Any) -> None:
    """A sequence of deliveries."""
    if isinstance(deliveries, Delivery) or not isinstance(deliveries, Iterable):
        raise InvalidArgument(
            "deliveries must be a list of postroom.Delivery, got a "
            f"{type(deliveries).__name__}"
        )
    for d in deliveries:
        check_delivery(d, "each of deliveries")


def check_error(error: Any) -> None:
    """An error to record: ``None``, a string, an exception or an ErrorInfo."""
    if error is None or isinstance(error, (str, BaseException, ErrorInfo)):
        return
    raise InvalidArgument(
        "error must be a string, an exception or a postroom.ErrorInfo, got a "
        f"{type(error).__name__}"
    )


def check_fail(delivery: Any, error: Any, delay: Any, outcome: Any) -> None:
    """``retry``'s and ``fail``'s arguments."""
    check_delivery(delivery)
    check_error(error)
    v.delay(delay)
    if outcome not in FAIL_OUTCOMES:
        raise InvalidArgument(
            f"outcome must be one of {', '.join(FAIL_OUTCOMES)}, got {outcome!r}"
        )


def _reason(value: Any, arg: str) -> None:
    if value not in DEAD_REASONS:
        raise InvalidArgument(
            f"{arg} must be one of {', '.join(DEAD_REASONS)}, got {value!r}"
        )


def check_reject(delivery: Any, error: Any, reason: Any) -> None:
    """``reject``'s arguments."""
    check_delivery(delivery)
    check_error(error)
    _reason(reason, "reason")


def check_settle(
    acks: Any, failures: Any, receive: Any, max_messages: Any, visibility_timeout: Any
) -> None:
    """``settle``'s arguments: deliveries, :class:`~postroom.Failure` records
    (their outcome ``failed``, ``timeout`` or a dead letter reason) and what to
    receive."""
    from .settlement import Failure

    check_deliveries(acks)
    if isinstance(failures, Failure) or not isinstance(failures, Iterable):
        raise InvalidArgument(
            "failures must be a list of postroom.Failure, got a "
            f"{type(failures).__name__}"
        )
    for f in failures:
        if not isinstance(f, Failure):
            raise InvalidArgument(
                f"each of failures must be a postroom.Failure, got a {type(f).__name__}"
            )
        check_delivery(f.delivery, "a failure's delivery")
        check_error(f.error)
        v.delay(f.delay)
        _reason(f.outcome, "a failure's outcome")
    if receive is not None:
        check_receive(receive, max_messages, visibility_timeout, 0.0)


def check_extend(delivery: Any, seconds: Any) -> None:
    """``extend``'s arguments: the new lease is 0.001 s to 12 hours."""
    check_delivery(delivery)
    v.lease(seconds, "seconds")


def check_peek(queue: Any, limit: Any) -> None:
    """``peek``'s arguments."""
    v.name(queue)
    v.limit(limit)


def check_dead_letters(
    queue: Any, limit: Any, reason: Any, error_contains: Any
) -> None:
    """``dead_letters``' arguments."""
    v.name(queue)
    v.limit(limit)
    if reason is not None:
        _reason(reason, "reason")
    v.text(error_contains, "error_contains")


def check_dead_letter(queue: Any, message_id: Any) -> None:
    """``dead_letter``'s arguments."""
    v.name(queue)
    v.text(message_id, "message_id", max_chars=v.MAX_NAME_BYTES, optional=False)


def check_redrive(
    queue: Any, ids: Any, to: Any, limit: Any, rate: Any, dry_run: Any
) -> None:
    """``redrive``'s arguments."""
    v.name(queue)
    v.ids(ids)
    v.optional_name(to, "to")
    v.limit(limit, optional=True)
    v.rate(rate)
    v.flag(dry_run, "dry_run")


def check_publish(topic: Any, headers: Any) -> None:
    """``publish``'s arguments but the body."""
    v.name(topic, "topic")
    v.headers(headers)


def check_subscription(
    topic: Any,
    name: Any,
    push_endpoint: Any,
    secret: Any,
    filter: Any,
    max_attempts: Any,
    visibility_timeout: Any,
    backoff: Any,
) -> None:
    """``create_subscription``'s arguments; its queue ``topic:name`` must be a
    valid queue name too."""
    v.subscription_part(topic, "topic")
    v.subscription_part(name, "name")
    v.name(f"{topic}:{name}", "the subscription's queue name (topic:name)")
    v.text(push_endpoint, "push_endpoint", max_chars=2048)
    v.text(secret, "secret")
    v.headers(filter, "filter")
    v.attempts(max_attempts)
    v.lease(visibility_timeout)
    check_backoff(backoff)


def check_subscription_ref(topic: Any, name: Any) -> None:
    """A subscription named to look it up or delete it (names made before ``:``
    was refused still work here)."""
    v.name(topic, "topic")
    v.name(name, "name")


def check_names(queues: Any) -> None:
    """A list of queue names."""
    if isinstance(queues, str) or not isinstance(queues, Iterable):
        raise InvalidArgument(
            f"queues must be a list of queue names, got a {type(queues).__name__}"
        )
    for queue in queues:
        v.name(queue)


def check_purge(queue: Any, dead: Any) -> None:
    """``purge``'s arguments."""
    v.name(queue)
    v.flag(dead, "dead")


# Counters stay exact in a double and in a signed 64-bit integer.
_MAX_COUNTER = 2**53


def check_durations(queue: Any, observations: Any, count: Any, sum_ms: Any) -> None:
    """``record_durations``' arguments: bucket labels to counts, all whole
    numbers from 0 to 2**53."""
    from .stats import DURATION_LABELS

    v.name(queue)
    if not isinstance(observations, Mapping):
        raise InvalidArgument("observations must be a mapping of bucket label to count")
    for label, n in observations.items():
        if label not in DURATION_LABELS:
            raise InvalidArgument(
                f"observations: unknown bucket {label!r}; use DURATION_LABELS"
            )
        v.count(n, f"observations[{label!r}]", 0, _MAX_COUNTER)
    v.count(count, "count", 0, _MAX_COUNTER)
    v.count(sum_ms, "sum_ms", 0, _MAX_COUNTER)


def check_worker(concurrency: Any, grace: Any) -> None:
    """A worker's ``concurrency`` (``None``: each handler's own) and shutdown
    ``grace`` period (0 s to 1 day)."""
    if concurrency is not None:
        v.count(concurrency, "concurrency", 1, v.MAX_BATCH)
    v.seconds(grace, "grace", 0.0, 86400.0, "1 day")


def check_handler(
    queue: Any, concurrency: Any, timeout: Any, arg: str = "queue"
) -> None:
    """``App.handler``'s and ``App.subscriber``'s common arguments."""
    v.name(queue, arg)
    v.count(concurrency, "concurrency", 1, v.MAX_BATCH)
    if timeout is not None:
        days = v.MAX_DELAY_SECONDS
        v.seconds(timeout, "timeout", v.MIN_LEASE_SECONDS, days, "14 days")
