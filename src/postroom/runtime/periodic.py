"""Periodic jobs on ordinary queue primitives, the same on every backend.

Each tick of ``@app.periodic(name, ...)`` is a message on the queue
``postroom.periodic.<name>``, sent delayed until the tick with the dedup key
``<name>@<tick>``. Every worker running the job keeps the next tick enqueued (at
start, and whenever a tick comes due): all of them compute the same tick, so the
dedup key leaves one copy, which one worker receives and handles. A tick whose
message was enqueued before every worker stopped is delivered when one starts
again (late); ticks that fell entirely within the downtime are not enqueued, so
at most one missed tick is caught up.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from ..model import validate as v
from ..model.errors import ConfigurationError, PostroomError
from ..model.schedule import Schedule

if TYPE_CHECKING:
    from ..client.core import AsyncClient
    from .app import HandlerSpec

__all__ = ["PERIODIC_PREFIX", "keep_scheduled", "periodic_queue", "start_schedules"]

log = logging.getLogger(__name__)

PERIODIC_PREFIX = "postroom.periodic."

# A tick further away than a send's longest delay is enqueued once it is closer.
_LONGEST_SLEEP = 86400.0
# After a failed send the scheduler tries again this much later.
_RETRY_SECONDS = 5.0


def periodic_queue(name: Any) -> str:
    """The internal queue of the periodic job ``name``."""
    v.name(name, "name")
    return v.name(PERIODIC_PREFIX + name, "name")


def tick_handler(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a periodic function of no argument or the tick time as a handler of
    one ``datetime`` argument (the tick message's body)."""
    params = list(inspect.signature(func).parameters.values())
    if len(params) > 1:
        raise ConfigurationError(
            f"periodic function {func.__qualname__} must take no argument or one "
            f"(the scheduled time, a datetime), it takes {len(params)}"
        )
    takes_tick = bool(params)
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(tick: datetime) -> Any:
            return await (func(tick) if takes_tick else func())

        run_async.__annotations__ = {"tick": datetime, "return": Any}
        return run_async

    @functools.wraps(func)
    def run(tick: datetime) -> Any:
        return func(tick) if takes_tick else func()

    run.__annotations__ = {"tick": datetime, "return": Any}
    return run


async def _enqueue(client: AsyncClient, queue: str, name: str, tick: datetime) -> None:
    wait = (tick - datetime.now(UTC)).total_seconds()
    stamp = tick.isoformat().replace("+00:00", "Z")
    await client.send(queue, stamp, delay=max(0.0, wait), dedup_key=f"{name}@{stamp}")


async def keep_scheduled(client: AsyncClient, queue: str, schedule: Schedule) -> None:
    """Keep the next tick of ``schedule`` enqueued on ``queue`` until cancelled."""
    name = queue.removeprefix(PERIODIC_PREFIX)
    last: datetime | None = None
    while True:
        now = datetime.now(UTC)
        tick = schedule.next_after(now if last is None else max(now, last))
        wait = (tick - now).total_seconds()
        if wait > v.MAX_DELAY_SECONDS:
            await anyio.sleep(min(wait - v.MAX_DELAY_SECONDS + 1, _LONGEST_SLEEP))
            continue
        try:
            await _enqueue(client, queue, name, tick)
        except PostroomError as exc:
            log.warning("periodic %s: enqueuing tick %s failed: %s", name, tick, exc)
            await anyio.sleep(_RETRY_SECONDS)
            continue
        last = tick
        await anyio.sleep(max(0.0, (tick - datetime.now(UTC)).total_seconds()))


def start_schedules(
    group: TaskGroup, client: AsyncClient, specs: Iterable[HandlerSpec]
) -> None:
    """Start :func:`keep_scheduled` in ``group`` for each periodic handler."""
    for spec in specs:
        if spec.schedule is not None:
            group.start_soon(keep_scheduled, client, spec.queue, spec.schedule)
