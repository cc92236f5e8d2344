"""What every CLI command shares: options, client, output, error handling."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

import postroom

__all__ = [
    "Json",
    "Url",
    "Yes",
    "console",
    "err_console",
    "fail",
    "open_client",
    "print_json",
    "state",
]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class _State:
    debug: bool = os.environ.get("POSTROOM_DEBUG") == "1"


state = _State()

Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="POSTROOM_URL",
        help="Backend URL (default: POSTROOM_URL, else sqlite:///postroom.db).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@contextmanager
def open_client(url: str | None) -> Iterator[postroom.Client]:
    """A connected client for the command's ``--url``."""
    with postroom.connect(url) as client:
        yield client


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> None:
    """Print an error (no traceback) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(code)


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive action unless ``--yes``; abort on no."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Refusing without a terminal: pass --yes to confirm.")
    if not typer.confirm(question):
        raise typer.Exit(1)
