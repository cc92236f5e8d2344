"""StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask.

A task moves the messages of a dead letter queue ``D`` back to where they came
from (or to ``DestinationArn``), at most ``MaxNumberOfMessagesPerSecond``:

1. the dead letters still held by each source queue (not yet read through
   ``D``) go back with postroom's atomic redrive, keeping their ids;
2. the messages on ``D`` are received, sent to their destination (the queue
   they were first sent to, recorded when sent through this endpoint, or the
   single source queue), then deleted from ``D``. A crash between the two
   leaves a copy in both places (at-least-once, as SQS). Messages with no
   known origin stay on ``D`` and the task ends FAILED, saying how many.

Tasks run in the server process that started them and are listed by it; they
are not persisted (a restart ends them; what moved stays moved).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from ...client.core import AsyncClient
from ...model.errors import QueueNotFound
from ...model.message import Delivery, now_ms
from ._attributes import queue_from_arn
from ._call import Call, action
from ._errors import error
from ._messages import origin_queue
from ._send import int_param

__all__: list[str] = []

_LEASE = 120.0


@dataclass(slots=True)
class MoveTask:
    """One move task and its progress."""

    handle: str
    source: str
    source_arn: str
    destination: str | None
    destination_arn: str | None
    rate: int | None
    started_ms: int
    status: str = "RUNNING"
    moved: int = 0
    to_move: int = 0
    failure: str | None = None
    runner: asyncio.Task[None] | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        """The task as ListMessageMoveTasks shows it."""
        out: dict[str, Any] = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == "RUNNING":
            out["TaskHandle"] = self.handle
        if self.destination_arn:
            out["DestinationArn"] = self.destination_arn
        if self.rate:
            out["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure:
            out["FailureReason"] = self.failure
        return out


class _Pace:
    """Sleeps so that ``rate`` messages per second are not exceeded."""

    def __init__(self, rate: int | None) -> None:
        self.rate, self.started, self.count = rate, time.monotonic(), 0

    async def step(self, n: int = 1) -> None:
        self.count += n
        if self.rate:
            ahead = self.count / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def _move_queued(
    client: AsyncClient, task: MoveTask, sources: list[str], pace: _Pace
) -> int:
    """Move the messages on the dead letter queue; return how many stayed."""
    held: list[Delivery] = []
    try:
        while True:
            got = await client.receive(task.source, 10, visibility_timeout=_LEASE)
            if not got:
                return len(held)
            for d in got:
                target = task.destination or origin_queue(d.message)
                if target in (None, task.source) and len(sources) == 1:
                    target = sources[0]
                if target is None or target == task.source:
                    held.append(d)
                    continue
                await client.send(target, d.body, headers=d.headers)
                await client.ack_many([d])
                task.moved += 1
                await pace.step()
    finally:
        await client.release(held)


async def _run(client: AsyncClient, task: MoveTask, sources: list[str]) -> None:
    pace = _Pace(task.rate)
    try:
        for source in sources:
            moved = await client.redrive(
                source, to=task.destination or source, rate=task.rate
            )
            task.moved += len(moved)
            await pace.step(len(moved))
        stayed = await _move_queued(client, task, sources, pace)
    except QueueNotFound as exc:
        task.status, task.failure = "FAILED", f"queue not found: {exc}"
        return
    except asyncio.CancelledError:
        task.status = "CANCELLED"
        raise
    if stayed:
        task.status = "FAILED"
        task.failure = (
            f"{stayed} message(s) have no known source queue: give DestinationArn"
        )
    else:
        task.status = "COMPLETED"


@action("StartMessageMoveTask", "admin")
async def start_move_task(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Start moving a dead letter queue's messages back."""
    source_arn = str(params.get("SourceArn") or "")
    source = queue_from_arn(source_arn, "SourceArn")
    call.cover(source)
    await call.policy(source)
    destination_arn = params.get("DestinationArn")
    destination = None
    if destination_arn:
        destination = queue_from_arn(str(destination_arn), "DestinationArn")
        call.cover(destination)
        await call.policy(destination)
    rate = int_param(params, "MaxNumberOfMessagesPerSecond", 1, 500)
    call.state.forget_sources()
    sources = await call.dead_letter_sources(source)
    if not sources and destination is None:
        raise error(
            "InvalidParameterValue",
            "Source queue must be configured as a Dead Letter Queue.",
        )
    for other in call.state.tasks.values():
        if other.source == source and other.status == "RUNNING":
            raise error(
                "UnsupportedOperation",
                "There is already a task running. Only one active task is "
                "allowed for each source queue.",
            )
    to_move = (await call.client.stats(source)).ready
    for s in sources:
        to_move += (await call.client.stats(s)).dead
    task = MoveTask(
        secrets.token_urlsafe(24), source, source_arn, destination,
        str(destination_arn) if destination_arn else None, rate, now_ms(),
        to_move=to_move,
    )  # fmt: skip
    call.state.tasks[task.handle] = task
    task.runner = asyncio.create_task(_run(call.client, task, sources))
    return {"TaskHandle": task.handle}


@action("ListMessageMoveTasks", "any")
async def list_move_tasks(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """The most recent move tasks of a source queue (this server process's)."""
    source = queue_from_arn(str(params.get("SourceArn") or ""), "SourceArn")
    call.cover(source)
    limit = int_param(params, "MaxResults", 1, 10) or 1
    tasks = sorted(
        (t for t in call.state.tasks.values() if t.source == source),
        key=lambda t: t.started_ms,
        reverse=True,
    )
    return {"Results": [t.describe() for t in tasks[:limit]]}


@action("CancelMessageMoveTask", "admin")
async def cancel_move_task(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Stop a running move task; what moved stays moved."""
    task = call.state.tasks.get(str(params.get("TaskHandle") or ""))
    if task is None or task.status != "RUNNING" or task.runner is None:
        raise error("ResourceNotFoundException", "No running task has that handle.")
    call.cover(task.source)
    task.runner.cancel()
    await asyncio.wait([task.runner])  # its batch in progress ends first
    task.status = "CANCELLED"
    return {"ApproximateNumberOfMessagesMoved": task.moved}
