"""``postroom workers``: the worker processes registered with a heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from ..model.errors import NotSupported
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
from .queues import fmt_ago

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


def register(app: typer.Typer) -> None:
    """Add ``postroom workers`` to the command line."""
    app.command("workers")(workers)
