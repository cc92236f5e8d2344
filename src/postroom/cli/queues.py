"""Queue commands: ``send``, ``queues``, ``peek``, ``purge`` and ``dlq ...``."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from .._codec import body_to_json
from .._message import DEAD_REASONS, DeadLetter, Message, QueueStats
from .._sync import Client
from ._common import (
    Json,
    Url,
    Yes,
    confirm,
    console,
    err_console,
    open_client,
    print_json,
)

__all__ = ["register"]

dlq_app = typer.Typer(
    name="dlq",
    help="Dead letters: list, show, redrive, purge.",
    no_args_is_help=True,
)

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
    app.add_typer(dlq_app, name="dlq")


# -- parsing -------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes) -> Any:
    """A JSON value when ``raw`` parses as JSON, else the text (or the bytes)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _check_headers(values: list[str] | None) -> list[str] | None:
    for item in values or []:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
    return values


def _check_ids(value: str | None) -> str | None:
    if value is not None and not _split_ids(value):
        raise typer.BadParameter("give message ids separated by commas: --ids a,b")
    return value


def _check_reason(value: str | None) -> str | None:
    if value is not None and value not in DEAD_REASONS:
        raise typer.BadParameter(
            f"{value!r} is not a reason; use one of {', '.join(DEAD_REASONS)}"
        )
    return value


def _split_ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


# -- formatting ----------------------------------------------------------------------


def _age(seconds: float | None) -> str:
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


def _ago(dt: datetime, now: datetime) -> str:
    seconds = (now - dt).total_seconds()
    if seconds < 0:
        return f"in {_age(-seconds)}"
    return f"{_age(seconds)} ago"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _when(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _preview(body: bytes, width: int = 60) -> Text:
    shown = body_to_json(body)
    if "body" not in shown:
        return Text(f"<{len(body)} bytes, binary>", style="dim")
    text = " ".join(str(shown["body"]).split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return Text(text)


def _pretty_body(message: Message) -> Text:
    shown = body_to_json(message.body)
    if "body" not in shown:
        return Text(f"<{len(message.body)} bytes, base64> {shown['body_base64']}")
    text = str(shown["body"])
    if message.headers.get("content-type") == "application/json":
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return Text(text)


def _error_line(dl: DeadLetter) -> Text:
    if dl.error is None:
        return Text("-", style="dim")
    return Text(f"{dl.error.type}: {dl.error.message}")


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
    url: Url = None,
) -> None:
    """Put one message on QUEUE and print its id."""
    raw = sys.stdin.buffer.read() if body == "-" else body.encode("utf-8")
    headers = dict(item.partition("=")[::2] for item in header or [])
    with open_client(url) as client:
        mid = client.send(
            queue, parse_body(raw), delay=delay, headers=headers, dedup_key=dedup_key
        )
    typer.echo(mid)


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
    table = Table("queue", "ready", "delayed", "in flight", "dead", "oldest age")
    for s in rows:
        table.add_row(
            Text(s.queue),
            str(s.ready),
            str(s.delayed),
            str(s.in_flight),
            Text(str(s.dead), style="bold red" if s.dead else ""),
            _age(s.oldest_age),
        )
    console.print(table)


def peek(
    queue: Queue, limit: Limit = 10, url: Url = None, as_json: Json = False
) -> None:
    """Show messages of QUEUE without leasing them, oldest first."""
    with open_client(url) as client:
        messages = client.peek(queue, limit)
    if as_json:
        print_json([m.to_dict() for m in messages])
        return
    if not messages:
        console.print(Text(f"queue {queue!r} has no messages"))
        return
    now = datetime.now(UTC)
    table = Table("id", "attempts", "enqueued", "available", "body")
    for column in table.columns[:4]:
        column.no_wrap = True
    for m in messages:
        available = "now" if m.available_at <= now else _ago(m.available_at, now)
        table.add_row(
            m.id,
            str(m.attempts),
            _ago(m.enqueued_at, now),
            available,
            _preview(m.body, 40),
        )
    console.print(table)


def purge(queue: Queue, yes: Yes = False, url: Url = None) -> None:
    """Delete every message of QUEUE (not its dead letters)."""
    with open_client(url) as client:
        client.queue_policy(queue)
        confirm(f"Delete every message of queue {queue!r}?", yes)
        n = client.purge(queue)
    console.print(Text(f"purged {_plural(n, 'message')} from {queue!r}"))


# -- dead letters --------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(
    queue: Queue,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help=f"Only this reason: {', '.join(DEAD_REASONS)}.",
            callback=_check_reason,
        ),
    ] = None,
    error_contains: Annotated[
        str | None,
        typer.Option("--error-contains", help="Only errors containing TEXT."),
    ] = None,
    limit: Limit = 50,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """List dead letters of QUEUE, oldest first."""
    with open_client(url) as client:
        found = client.dead_letters(
            queue, limit=limit, reason=reason, error_contains=error_contains
        )
    if as_json:
        print_json([dl.to_dict() for dl in found])
        return
    if not found:
        console.print(Text(f"no dead letters on {queue!r} match"))
        return
    now = datetime.now(UTC)
    table = Table("id", "reason", "attempts", "dead", "error")
    for column in table.columns[:4]:
        column.no_wrap = True
    for dl in found:
        table.add_row(
            dl.id, dl.reason, str(dl.attempts), _ago(dl.dead_at, now), _error_line(dl)
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    queue: Queue,
    message_id: Annotated[str, typer.Argument(metavar="ID", help="Message id.")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Show one dead letter: body, headers, error with traceback, history."""
    with open_client(url) as client:
        dl = client.dead_letter(queue, message_id)
    if as_json:
        print_json(dl.to_dict())
        return
    _render_dead_letter(dl)


def _render_dead_letter(dl: DeadLetter) -> None:
    msg = dl.message
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("id", msg.id)
    facts.add_row("queue", Text(dl.queue))
    facts.add_row("reason", Text(dl.reason, style="bold red"))
    facts.add_row("attempts", f"{dl.attempts} (earlier redrives: {msg.redrives})")
    facts.add_row("enqueued at", _when(msg.enqueued_at))
    facts.add_row("dead at", _when(dl.dead_at))
    headers = "\n".join(f"{k}: {v}" for k, v in sorted(msg.headers.items()))
    facts.add_row("headers", Text(headers or "-"))
    facts.add_row("error", _error_line(dl))
    console.print(facts)
    console.print(Text("\nbody", style="bold"))
    console.print(_pretty_body(msg))
    if dl.error is not None and dl.error.traceback:
        console.print(Text("\ntraceback", style="bold"))
        console.print(Text(dl.error.traceback.rstrip()))
    history = Table("#", "at", "consumer", "outcome", "error", title="attempt history")
    history.columns[1].no_wrap = True
    for n, entry in enumerate(dl.history, 1):
        err = f"{entry.error.type}: {entry.error.message}" if entry.error else "-"
        history.add_row(
            str(n), _when(entry.at), Text(entry.consumer), entry.outcome, Text(err)
        )
    console.print(history)


@dlq_app.command("redrive")
def dlq_redrive(
    queue: Queue,
    ids: Annotated[
        str | None,
        typer.Option(
            "--ids", help="Only these ids, comma-separated.", callback=_check_ids
        ),
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Target queue (default: QUEUE).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="At most N messages.")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="At most R messages per second.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would move.")
    ] = False,
    yes: Yes = False,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Move dead letters of QUEUE back to it (or to --to) to be processed again."""
    id_list = _split_ids(ids) if ids is not None else None
    target = to or queue
    with open_client(url) as client:
        if dry_run:
            moved = client.redrive(
                queue, ids=id_list, to=to, limit=limit, rate=rate, dry_run=True
            )
        else:
            total = len(id_list) if id_list is not None else client.stats(queue).dead
            total = min(total, limit) if limit is not None else total
            if total == 0:
                moved = []
            else:
                confirm(
                    f"Redrive up to {total} dead letters of {queue!r} to {target!r}?",
                    yes,
                )
                moved = _redrive_with_progress(
                    client, queue, id_list, to, limit, rate, total
                )
    _report_redrive(queue, target, moved, dry_run, as_json)


def _redrive_with_progress(
    client: Client,
    queue: str,
    ids: list[str] | None,
    to: str | None,
    limit: int | None,
    rate: float | None,
    total: int,
) -> list[str]:
    columns = (
        TextColumn("redriving"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.elapsed:.1f}s"),
    )
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        progress.advance(task, n)

    with Progress(*columns, console=err_console) as progress:
        task = progress.add_task("redrive", total=total)
        try:
            moved: list[str] = client.redrive(
                queue, ids=ids, to=to, limit=limit, rate=rate, on_progress=advance
            )
        except KeyboardInterrupt:
            progress.stop()
            err_console.print(
                Text(
                    f"interrupted: {_plural(done, 'dead letter')} redriven, the rest "
                    "are still dead letters; run the command again to go on"
                )
            )
            raise
    return moved


def _report_redrive(
    queue: str, target: str, moved: list[str], dry_run: bool, as_json: bool
) -> None:
    if as_json:
        key = "would_redrive" if dry_run else "redriven"
        print_json({"queue": queue, "to": target, key: moved, "dry_run": dry_run})
        return
    if dry_run:
        for mid in moved:
            typer.echo(mid)
        console.print(
            Text(
                f"dry run: would redrive {_plural(len(moved), 'dead letter')} "
                f"to {target!r}"
            )
        )
        return
    if not moved:
        console.print(Text(f"no dead letters to redrive on {queue!r}"))
        return
    console.print(
        Text(f"redrove {_plural(len(moved), 'dead letter')} of {queue!r} to {target!r}")
    )


@dlq_app.command("purge")
def dlq_purge(queue: Queue, yes: Yes = False, url: Url = None) -> None:
    """Delete every dead letter of QUEUE."""
    with open_client(url) as client:
        client.queue_policy(queue)
        confirm(f"Delete every dead letter of queue {queue!r}?", yes)
        n = client.purge(queue, dead=True)
    console.print(Text(f"purged {_plural(n, 'dead letter')} of {queue!r}"))
