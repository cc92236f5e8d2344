"""Queue commands: ``send``, ``queues``, ``peek``, ``purge`` (``dlq`` in dlq.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table
from rich.text import Text

from ..model.codec import body_to_json
from ..model.message import QueueStats
from ._bodies import Raw, message_json, parse_body
from ._common import (
    Json,
    Url,
    Yes,
    confirm,
    console,
    open_client,
    print_json,
    print_table,
    safe,
    safe_text,
)

__all__ = [
    "Limit",
    "Queue",
    "fmt_age",
    "fmt_ago",
    "fmt_when",
    "parse_body",
    "plural",
    "preview",
    "register",
]

Queue = Annotated[
    str, typer.Argument(metavar="QUEUE", help="Queue name, e.g. images.resize.")
]
Limit = Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")]


def register(app: typer.Typer) -> None:
    """Add the queue commands and the ``dlq`` group to ``app``."""
    app.command("send")(send)
    app.command("queues")(queues)
    app.command("peek")(peek)
    app.command("purge")(purge)
    app.command("delete-queue")(delete_queue)
    from .dlq import dlq_app

    app.add_typer(dlq_app, name="dlq")


# -- parsing -------------------------------------------------------------------------


def _check_headers(values: list[str] | None) -> list[str] | None:
    for item in values or []:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
    return values


# -- formatting ----------------------------------------------------------------------


def fmt_age(seconds: float | None) -> str:
    """A duration in seconds, short: ``4.2s``, ``3m05s``, ``2h01m``, ``3d04h``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def fmt_ago(dt: datetime, now: datetime) -> str:
    """``dt`` relative to ``now``: ``4.2s ago`` or ``in 3m05s``."""
    seconds = (now - dt).total_seconds()
    if seconds < 0:
        return f"in {fmt_age(-seconds)}"
    return f"{fmt_age(seconds)} ago"


def plural(n: int, word: str) -> str:
    """``1 message``, ``2 messages``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fmt_when(dt: datetime) -> str:
    """A UTC time with milliseconds, ``2024-06-01 12:00:00.123Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def preview(body: bytes, width: int = 60) -> Text:
    """The start of a body on one line (binary bodies by their size); cut to
    ``width`` characters only on a terminal."""
    shown = body_to_json(body)
    if "body" not in shown:
        return Text(f"<{len(body)} bytes, binary>", style="dim")
    text = " ".join(str(shown["body"]).split())
    if console.is_terminal and len(text) > width:
        text = text[: width - 1] + "…"
    return safe_text(text)


# -- commands ------------------------------------------------------------------------


def send(
    queue: Queue,
    body: Annotated[
        str,
        typer.Argument(
            metavar="BODY",
            help="Message body: JSON if it parses as JSON, else a string; "
            "'-' reads it from stdin.",
        ),
    ],
    raw_text: Raw = False,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            metavar="KEY=VALUE",
            help="A message header (repeatable).",
            callback=_check_headers,
        ),
    ] = None,
    delay: Annotated[
        float | None,
        typer.Option("--delay", min=0.0, help="Hide the message for S seconds."),
    ] = None,
    dedup_key: Annotated[
        str | None,
        typer.Option("--dedup-key", help="Send at most once per key (dedup window)."),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="FIFO group: one at a time, in send order."),
    ] = None,
    priority: Annotated[
        int,
        typer.Option("--priority", min=0, max=9, help="0 to 9; 9 is delivered first."),
    ] = 0,
    url: Url = None,
) -> None:
    """Put one message on QUEUE and print its id."""
    raw = sys.stdin.buffer.read() if body == "-" else body.encode("utf-8")
    headers = dict(item.partition("=")[::2] for item in header or [])
    with open_client(url) as client:
        mid = client.send(
            queue,
            parse_body(raw, raw_text=raw_text),
            delay=delay,
            headers=headers,
            dedup_key=dedup_key,
            group=group,
            priority=priority,
        )
    typer.echo(safe(mid))


def queues(url: Url = None, as_json: Json = False) -> None:
    """List every queue with its depths."""
    with open_client(url) as client:
        stats = client.stats()
    rows: list[QueueStats] = [stats[name] for name in sorted(stats)]
    if as_json:
        print_json([s.to_dict() for s in rows])
        return
    if not rows:
        console.print("no queues yet: `postroom send QUEUE BODY` creates one")
        return
    table = Table(
        "queue", "ready", "delayed", "in flight", "dead", "oldest age", box=SIMPLE_HEAD
    )
    for s in rows:
        table.add_row(
            safe_text(s.queue),
            str(s.ready),
            str(s.delayed),
            str(s.in_flight),
            Text(str(s.dead), style="bold red" if s.dead else ""),
            fmt_age(s.oldest_age),
        )
    print_table(table)


def peek(
    queue: Queue, limit: Limit = 10, url: Url = None, as_json: Json = False
) -> None:
    """Show messages of QUEUE without leasing them, oldest first."""
    with open_client(url) as client:
        messages = client.peek(queue, limit)
    if as_json:
        print_json([message_json(m) for m in messages])
        return
    if not messages:
        console.print(Text(f"queue {queue!r} has no messages"))
        return
    now = datetime.now(UTC)
    table = Table("id", "attempts", "enqueued", "available", "body", box=SIMPLE_HEAD)
    for column in table.columns[:4]:
        column.no_wrap = True
    for m in messages:
        available = "now" if m.available_at <= now else fmt_ago(m.available_at, now)
        table.add_row(
            safe_text(m.id),
            str(m.attempts),
            fmt_ago(m.enqueued_at, now),
            available,
            preview(m.body, 40),
        )
    print_table(table)


def purge(queue: Queue, yes: Yes = False, url: Url = None) -> None:
    """Delete every message of QUEUE (not its dead letters)."""
    with open_client(url) as client:
        client.queue_policy(queue)
        confirm(f"Delete every message of queue {queue!r}?", yes)
        n = client.purge(queue)
    console.print(Text(f"purged {plural(n, 'message')} from {queue!r}"))


def delete_queue(queue: Queue, yes: Yes = False, url: Url = None) -> None:
    """Delete QUEUE with its messages, dead letters and policy."""
    with open_client(url) as client:
        st = client.stats(queue)
        messages = plural(st.ready + st.delayed + st.in_flight, "message")
        dead = plural(st.dead, "dead letter")
        confirm(f"Delete queue {queue!r} with {messages} and {dead}?", yes)
        client.delete_queue(queue)
    console.print(Text(f"deleted queue {queue!r}"))
