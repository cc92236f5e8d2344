"""Dead letter commands: ``postroom dlq list|show|redrive|purge QUEUE``."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from ..client.sync import Client
from ..model import arguments as check
from ..model.codec import body_to_json
from ..model.message import DEAD_REASONS, DeadLetter, ErrorInfo, Message
from ._bodies import dead_letter_json
from ._common import (
    Json,
    Url,
    Yes,
    confirm,
    console,
    err_console,
    open_client,
    print_json,
    print_table,
    safe,
    safe_text,
)
from .queues import Limit, Queue, fmt_ago, fmt_when, plural

__all__ = ["dlq_app"]

dlq_app = typer.Typer(
    name="dlq",
    help="Dead letters: list, show, redrive, purge.",
    no_args_is_help=True,
)


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


def _pretty_body(message: Message) -> Text:
    shown = body_to_json(message.body)
    if "body" not in shown:
        return Text(f"<{len(message.body)} bytes, base64> {shown['body_base64']}")
    text = str(shown["body"])
    if message.headers.get("content-type") == "application/json":
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return safe_text(text, lines=True)


def _error_text(error: ErrorInfo | None, *, one_line: bool = False) -> Text:
    if error is None:
        return Text("-", style="dim")
    message = error.message
    if one_line:  # in tables: the first line, at most 100 characters
        message = " ".join(message.strip().splitlines()[:1])
        if len(message) > 100:
            message = message[:99] + "…"
    return safe_text(f"{error.type}: {message}", lines=not one_line)


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
        print_json([dead_letter_json(dl) for dl in found])
        return
    if not found:
        console.print(Text(f"no dead letters on {queue!r} match"))
        return
    _print_dead_letters(found)


def _print_dead_letters(found: list[DeadLetter]) -> None:
    """Two lines per dead letter (what, then why): readable at any width."""
    now = datetime.now(UTC)
    for dl in found:
        line = safe_text(dl.id, style="bold")
        line.append(f"  {safe(dl.reason)}", style="red")
        line.append(f"  {plural(dl.attempts, 'attempt')}")
        line.append(f"  dead {fmt_ago(dl.dead_at, now)}", style="dim")
        console.print(line, no_wrap=True, overflow="ellipsis")
        error = _error_text(dl.error, one_line=True)
        console.print(Text("  ") + error, no_wrap=True, overflow="ellipsis")
    console.print(Text(f"{plural(len(found), 'dead letter')}", style="dim"))


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
        print_json(dead_letter_json(dl))
        return
    _render_dead_letter(dl)


def _render_dead_letter(dl: DeadLetter) -> None:
    msg = dl.message
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("id", safe_text(msg.id))
    facts.add_row("queue", safe_text(dl.queue))
    facts.add_row("reason", safe_text(dl.reason, style="bold red"))
    facts.add_row("attempts", f"{dl.attempts} (earlier redrives: {msg.redrives})")
    facts.add_row("enqueued at", fmt_when(msg.enqueued_at))
    facts.add_row("dead at", fmt_when(dl.dead_at))
    headers = "\n".join(f"{safe(k)}: {safe(v)}" for k, v in sorted(msg.headers.items()))
    facts.add_row("headers", Text(headers or "-"))
    facts.add_row("error", _error_text(dl.error))
    console.print(facts)
    console.print(Text("\nbody", style="bold"))
    console.print(_pretty_body(msg), soft_wrap=True)
    if dl.error is not None and dl.error.traceback:
        console.print(Text("\ntraceback", style="bold"))
        console.print(
            safe_text(dl.error.traceback.rstrip(), lines=True), soft_wrap=True
        )
    history = Table(title="attempt history", box=SIMPLE_HEAD)
    for name in ("#", "at", "consumer", "outcome"):
        history.add_column(name, no_wrap=True)
    history.add_column("error")
    for n, entry in enumerate(dl.history, 1):
        history.add_row(
            str(n),
            fmt_when(entry.at),
            safe_text(entry.consumer),
            safe_text(entry.outcome),
            _error_text(entry.error, one_line=True),
        )
    print_table(history)


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
    # before anything is counted: a bad option fails even with nothing to move
    check.check_redrive(queue, id_list, to, limit, rate, dry_run)
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
        # more dead letters may arrive while it runs: the total grows with them,
        # so the bar never shows more done than its total
        progress.update(task, completed=done, total=max(total, done))

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
                    f"interrupted: {plural(done, 'dead letter')} redriven, the rest "
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
            typer.echo(safe(mid))
        console.print(
            Text(
                f"dry run: would redrive {plural(len(moved), 'dead letter')} "
                f"to {target!r}"
            )
        )
        return
    if not moved:
        console.print(Text(f"no dead letters to redrive on {queue!r}"))
        return
    console.print(
        Text(f"redrove {plural(len(moved), 'dead letter')} of {queue!r} to {target!r}")
    )


@dlq_app.command("purge")
def dlq_purge(queue: Queue, yes: Yes = False, url: Url = None) -> None:
    """Delete every dead letter of QUEUE."""
    with open_client(url) as client:
        client.queue_policy(queue)
        confirm(f"Delete every dead letter of queue {queue!r}?", yes)
        n = client.purge(queue, dead=True)
    console.print(Text(f"purged {plural(n, 'dead letter')} of {queue!r}"))
