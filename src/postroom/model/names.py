"""Names and their rules: what a queue or topic may be called, and the names
derived from others (a queue's dead letter queue, a subscription's queue).

Every derived name comes from one function here, never built inline.
"""

from __future__ import annotations

__all__ = ["check_queue_name", "dead_letter_queue_name", "subscription_queue_name"]


def check_queue_name(name: str) -> str:
    """Validate a queue or topic name; return it (the rules are
    :func:`postroom.model.validate.name`'s)."""
    from .validate import name as valid_name

    return valid_name(name)


def dead_letter_queue_name(queue: str) -> str:
    """The default name of ``queue``'s dead letter queue."""
    return f"{queue}.dead"


def subscription_queue_name(topic: str, name: str) -> str:
    """The name of the queue behind subscription ``name`` of ``topic``.

    Topic and subscription names may not contain ``:`` (see
    :func:`postroom.model.validate.subscription_part`), so two subscriptions
    never share a queue.
    """
    return f"{topic}:{name}"
