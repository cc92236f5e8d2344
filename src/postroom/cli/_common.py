"""What every CLI command shares: options, client, output, error handling."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console, ConsoleDimensions, RenderableType
from rich.markup import escape
from rich.text import Text

import postroom

__all__ = [
    "Json",
    "PushAllow",
    "Url",
    "Yes",
    "console",
    "err_console",
    "fail",
    "open_client",
    "print_json",
    "print_table",
    "safe",
    "safe_text",
    "state",
]

# Output that is not a terminal (a pipe, a file) is read by scripts: lines and
# tables there are as wide as their content, never cut or wrapped at 80 columns.
PIPE_WIDTH = 100_000


class _Console(Console):
    """A rich console as wide as its content when not writing to a terminal
    (unless ``COLUMNS`` says otherwise)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        columns = os.environ.get("COLUMNS", "")
        if self._width is None and not self.is_terminal and not columns.isdigit():
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)


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
PushAllow = Annotated[
    list[str] | None,
    typer.Option(
        "--push-allow",
        metavar="CIDR_OR_HOST",
        help="Let pushes reach this private/loopback network, address or host "
        "name (repeatable; also POSTROOM_PUSH_ALLOW).",
    ),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


@contextmanager
def open_client(url: str | None) -> Iterator[postroom.Client]:
    """A connected client for the command's ``--url``."""
    with postroom.connect(url) as client:
        yield client


def _escaped(c: str) -> str:
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def safe(text: str, *, lines: bool = False) -> str:
    """``text`` for a terminal: control characters (ESC and every other C0 and C1
    code, DEL) and other unprintable ones (bidi overrides, zero-width
    characters, lone surrogates) shown as ``\\x1b``-style escapes, so that
    names, bodies and error texts from the backend cannot drive the terminal.
    With ``lines``, newlines and tabs are kept."""
    if text.isprintable():
        return text
    keep = "\n\t" if lines else ""
    return "".join(c if c.isprintable() or c in keep else _escaped(c) for c in text)


def safe_text(text: str, style: str = "", *, lines: bool = False) -> Text:
    """A rich ``Text`` of :func:`safe` ``text`` (never read as markup)."""
    return Text(safe(text, lines=lines), style=style)


def print_table(table: RenderableType) -> None:
    """Print a table: on a terminal as rich draws it; elsewhere each line without
    the spaces that pad it to the table's width, so scripts read the content."""
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    lines = [line.rstrip() for line in captured.get().splitlines()]
    sys.stdout.write("\n".join(lines).strip("\n") + "\n")


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, code: int = 1) -> None:
    """Print an error (no traceback) and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(safe(message))}", markup=True)
    raise typer.Exit(code)


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive action unless ``--yes``; on no, say "nothing
    done" and exit 1."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} Refusing without a terminal: pass --yes to confirm.")
    if not typer.confirm(question):
        err_console.print("nothing done")
        raise typer.Exit(1)
