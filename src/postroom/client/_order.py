"""Refusing message groups, priorities and rate limits a backend cannot honour.

Called by the client after the arguments were validated and before anything is
stored (not even the queue a send would create), so a refused call changes
nothing.
"""

from __future__ import annotations

from ..backends.base import Backend
from ..model.arguments import check_order
from ..model.errors import NotSupported

__all__ = ["require_order"]

_ALTERNATIVES = "use sqlite://, memory://, or a backend whose capabilities have it"


def require_order(
    backend: Backend,
    *,
    group: str | None = None,
    priority: int = 0,
    rate_limit: float | None = None,
) -> None:
    """Check a send's ``group`` and ``priority`` (:class:`InvalidArgument`), then
    raise :class:`NotSupported` naming the first argument ``backend`` cannot
    honour: a ``group``, a ``priority`` other than the default 0, a ``rate_limit``
    (checked by the caller)."""
    check_order(group, priority)
    caps, name = backend.capabilities, type(backend).__name__
    if group is not None and not caps.groups:
        raise NotSupported(
            f"group={group!r}: {name} has no FIFO message groups; {_ALTERNATIVES}"
        )
    if priority and not caps.priorities:
        raise NotSupported(
            f"priority={priority!r}: {name} has no message priorities (every "
            f"message has priority 0 there); {_ALTERNATIVES}"
        )
    if rate_limit is not None and not caps.rate_limits:
        raise NotSupported(
            f"rate_limit={rate_limit!r}: {name} cannot limit a queue's deliveries "
            f"per second; {_ALTERNATIVES}"
        )
