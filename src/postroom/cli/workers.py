"""``postroom workers`` (the worker processes registered with a heartbeat) and
``postroom schedules`` (the periodic jobs' next ticks)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from ..client.sync import Client
from ..model.errors import NotSupported
from ..runtime.periodic import PERIODIC_PREFIX
from ._common import (
    Json,
    Url,
    console,
    fail,
    open_client,
    print_json,
    print_table,
    safe_text,
)
from .queues import fmt_ago, fmt_when

__all__ = ["register"]


def workers(url: Url = None, as_json: Json = False) -> None:
    """List the worker processes running now, with their heartbeats."""
    with open_client(url) as client:
        try:
            found = client.workers()
        except NotSupported as exc:
            fail(str(exc))
            return
    if as_json:
        print_json([w.to_dict() for w in found])
        return
    if not found:
        console.print(
            "no workers: none has sent a heartbeat within its last three "
            "(`postroom worker MODULE:APP` starts one)"
        )
        return
    now = datetime.now(UTC)
    table = Table(
        "host",
        "pid",
        "queues",
        "concurrency",
        "in flight",
        "handled",
        "failed",
        "started",
        "last seen",
        box=SIMPLE_HEAD,
    )
    for w in found:
        table.add_row(
            safe_text(w.host),
            str(w.pid),
            safe_text(", ".join(w.queues) or "-"),
            str(w.concurrency),
            str(w.in_flight),
            str(w.handled),
            str(w.failed),
            fmt_ago(w.started_at, now),
            fmt_ago(w.last_seen, now),
        )
    print_table(table)


def _next_tick(client: Client, queue: str) -> datetime | None:
    ticks = [datetime.fromisoformat(m.json()) for m in client.peek(queue, 100)]
    return min(ticks, default=None)


def schedules(url: Url = None, as_json: Json = False) -> None:
    """List the periodic jobs (``@app.periodic``) with their next tick."""
    with open_client(url) as client:
        rows = []
        for queue in client.queues():
            if queue.startswith(PERIODIC_PREFIX):
                st = client.stats(queue)
                tick = _next_tick(client, queue)
                rows.append((queue.removeprefix(PERIODIC_PREFIX), tick, st))
    if as_json:
        docs = [
            {"name": name, "queue": st.queue, "next": tick and tick.isoformat()}
            | {"in_flight": st.in_flight, "dead": st.dead}
            for name, tick, st in rows
        ]
        print_json(docs)
        return
    if not rows:
        console.print("no periodic jobs: a worker running @app.periodic creates them")
        return
    now = datetime.now(UTC)
    table = Table("name", "next tick", "running", "dead", box=SIMPLE_HEAD)
    for name, tick, st in rows:
        shown = "-" if tick is None else f"{fmt_when(tick)} ({fmt_ago(tick, now)})"
        table.add_row(safe_text(name), shown, str(st.in_flight), str(st.dead))
    print_table(table)


def register(app: typer.Typer) -> None:
    """Add ``postroom workers`` and ``postroom schedules`` to the command line."""
    app.command("workers")(workers)
    app.command("schedules")(schedules)
