"""``postroom demo``: the thumbnail pipeline end to end, drawn with rich."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.box import SIMPLE_HEAD
from rich.console import Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
)
from rich.table import Table

from ..model.errors import MissingDependency
from ..model.message import DeadLetter
from ._common import Json, console, err_console, print_json

if TYPE_CHECKING:
    from ..demo._report import Snapshot

__all__ = ["register"]

# module -> the package that provides it
_DEMO_MODULES = {
    "PIL": "pillow",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "multipart": "python-multipart",
}


def _check_dependencies() -> None:
    missing = [
        package
        for module, package in _DEMO_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise MissingDependency(
            f"postroom demo needs {', '.join(missing)}: pip install 'postroom[demo]'"
        )


class _Quiet:
    """Reports nothing (``--json``: only the summary is printed)."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def phase(self, phase: str, detail: str) -> None:
        """Ignored."""

    def progress(self, snapshot: Snapshot) -> None:
        """Ignored."""

    def dead_letters(self, letters: list[DeadLetter]) -> None:
        """Ignored."""


class _Live:
    """A live display: progress bars, queue depths, and a line per step."""

    def __init__(self, images: int) -> None:
        self.bars = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
        )
        self.uploads = self.bars.add_task("uploaded", total=images)
        self.ended = self.bars.add_task("jobs ended", total=None)
        self.indexed = self.bars.add_task("in gallery", total=None)
        self.hooks = self.bars.add_task("webhooks", total=None)
        self.live = Live(self._render(None), console=console, refresh_per_second=8)
        self.started = False

    def _render(self, snap: Snapshot | None) -> Group:
        if snap is None:
            return Group(self.bars)
        line = (
            f"[dim]images.resize[/]  ready {snap.ready}  retrying {snap.delayed}  "
            f"in flight {snap.in_flight}  dead {snap.dead}  retried {snap.retried}"
        )
        return Group(self.bars, line)

    def __enter__(self) -> _Live:
        return self  # the display starts with the first progress

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.started:
            return
        self.live.__exit__(exc_type, exc, tb)
        if not console.is_terminal:
            console.print()

    def phase(self, phase: str, detail: str) -> None:
        """Print one line per step above the bars."""
        console.print(f"[bold cyan]>[/] {detail}")

    def progress(self, snapshot: Snapshot) -> None:
        """Move the bars to the backend's counts."""
        if not self.started:
            self.live.__enter__()
            self.started = True
        uploads = self.bars.tasks[self.uploads].total or 0
        self._bar(self.uploads, snapshot.uploaded, int(uploads))
        self._bar(self.ended, snapshot.acked + snapshot.dead, snapshot.jobs)
        acked = max(snapshot.acked, 1)
        self._bar(self.indexed, snapshot.gallery, acked)
        self._bar(self.hooks, snapshot.webhooks, acked)
        self.live.update(self._render(snapshot))

    def _bar(self, task: TaskID, done: int, total: int) -> None:
        # redeliveries (at least once) can count past a total: never show 12/10
        self.bars.update(task, completed=done, total=max(total, done))

    def dead_letters(self, letters: list[DeadLetter]) -> None:
        """A table of the dead letters with their reasons."""
        console.print(_dead_letter_table(letters))


def _dead_letter_table(letters: list[DeadLetter]) -> Table:
    """The dead letters grouped by reason and error type, with one error each."""
    groups: dict[tuple[str, str], list[DeadLetter]] = {}
    for d in sorted(letters, key=lambda d: d.id):
        key = (d.reason, d.error.type if d.error else "")
        groups.setdefault(key, []).append(d)
    table = Table(
        title=f"{len(letters)} dead letters on images.resize",
        title_justify="left",
        box=SIMPLE_HEAD,
    )
    table.add_column("reason", no_wrap=True)
    table.add_column("count", justify="right")
    table.add_column("tries", justify="right")
    table.add_column("last error (of the first)", overflow="fold")
    for (reason, _), group in sorted(groups.items()):
        first = group[0]
        error = f"{first.error.type}: {first.error.message}" if first.error else ""
        line = error.splitlines()[0] if error else ""
        table.add_row(reason, str(len(group)), str(first.attempts), line[:160])
    table.caption = "each of them: postroom dlq list images.resize (--url of the run)"
    return table


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{r} {n}" for r, n in counts.items()) or "none"


def _summary_table(s: dict[str, Any]) -> Table:
    up = s["uploads"]
    lat = s["latency_ms"]
    table = Table.grid(padding=(0, 2))
    rows = [
        ("uploaded", f"{s['uploaded']}  ({_reasons(up)})"),
        ("outdated jobs", str(s["malformed_jobs"])),
        (
            "processed",
            f"{s['processed']}  ({s['processed_first_pass']} first pass, "
            f"{s['redriven_processed']} after redrive)",
        ),
        ("retried", f"{s['retried']}  (attempts that failed and were retried)"),
        (
            "dead-lettered",
            f"{sum(s['dead_lettered'].values())}  ({_reasons(s['dead_lettered'])})",
        ),
        ("redriven", f"{s['redriven']}  ({s['redriven_processed']} processed)"),
        (
            "still dead",
            f"{sum(s['dead_at_end'].values())}  ({_reasons(s['dead_at_end'])})",
        ),
        (
            "events",
            f"{s['gallery']} in the gallery (subscriber), {s['webhooks']} webhooks "
            "(signed HTTP push)",
        ),
        ("throughput", f"{s['throughput_per_second']} images/s (first pass)"),
        (
            "latency",
            f"p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])} (upload to gallery)",
        ),
        ("elapsed", f"{s['elapsed_seconds']} s"),
        ("folder", s["dir"]),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/]", value)
    return table


def demo(
    images: Annotated[
        int, typer.Option("--images", "-n", min=1, help="How many images to upload.")
    ] = 200,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Resize worker processes.")
    ] = 2,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Leave everything running until Ctrl-C."),
    ] = False,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Run in this folder (kept) instead of a new temporary one.",
            file_okay=False,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Run on this backend instead of a new SQLite database in the "
            "folder (it must be empty).",
            show_default=False,
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Run the thumbnail pipeline end to end on SQLite: uploads, workers, retries,
    dead letters, a fix and a redrive, then a summary."""
    _check_dependencies()
    from ..demo.runner import DemoOptions, DemoRun

    options = DemoOptions(images=images, workers=workers, folder=folder, url=url)
    reporter: _Live | _Quiet = _Quiet() if json else _Live(images)
    # SIGTERM and SIGHUP stop the demo as Ctrl-C does: its children are stopped too.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    with DemoRun(options, reporter) as run:
        with reporter:
            run.run()
        if keep:
            _show(run.summary.to_dict(), json)
            _print_keep(run.service_url, run.start_dashboard())
            run.wait_until_interrupted()
    if not keep:  # shown once everything stopped, with the exit codes
        _show(run.summary.to_dict(), json)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _show(summary: dict[str, Any], json: bool) -> None:
    if json:
        print_json(summary)
        return
    console.print("\n[bold]Summary[/]")
    console.print(_summary_table(summary))
    _print_hints(summary["url"])


def _postroom_command() -> str:
    """How to call this very ``postroom`` script: by name when it is the one on
    PATH, else by its path (``.venv/bin/postroom`` after ``scripts/demo.sh``)."""
    script = os.path.abspath(sys.argv[0])
    if os.path.basename(script) != "postroom":
        return "postroom"
    on_path = shutil.which("postroom")
    if on_path and os.path.samefile(on_path, script):
        return "postroom"
    relative = os.path.relpath(script)
    return script if relative.startswith("..") else relative


def _print_hints(url: str) -> None:
    console.print("\nLook around (the folder is kept):")
    postroom = _postroom_command()
    for command in ("queues", "dlq list images.resize"):
        console.print(f"  {postroom} {command} --url {url}", soft_wrap=True)


def _print_keep(service_url: str, dashboard: str | None) -> None:
    # On stderr: with --json, stdout carries only the summary.
    err_console.print(
        f"\nStill running until Ctrl-C: the thumbnail service on {service_url} "
        f"(GET {service_url}/images is the gallery)"
    )
    if dashboard:
        err_console.print(f"and the postroom dashboard on {dashboard}")
    else:
        err_console.print("(pip install 'postroom[server]' to get the dashboard too)")


def register(app: typer.Typer) -> None:
    """Add ``postroom demo`` to the command line."""
    app.command("demo")(demo)
