"""Names and their rules: what a queue or topic may be called, and the names
derived from others (a queue's dead letter queue, a subscription's queue).

Every derived name comes from one function here, never built inline.
"""

from __future__ import annotations

from .errors import ConfigurationError

__all__ = ["check_queue_name", "dead_letter_queue_name", "subscription_queue_name"]


def check_queue_name(name: str) -> str:
    """Validate a queue or topic name; return it."""
    if not name or len(name) > 200 or any(c.isspace() for c in name):
        raise ConfigurationError(
            f"invalid name {name!r}: use 1-200 characters without spaces, "
            "e.g. 'images.resize'"
        )
    return name


def dead_letter_queue_name(queue: str) -> str:
    """The default name of ``queue``'s dead letter queue."""
    return f"{queue}.dead"


def subscription_queue_name(topic: str, name: str) -> str:
    """The name of the queue behind subscription ``name`` of ``topic``."""
    return f"{topic}:{name}"
