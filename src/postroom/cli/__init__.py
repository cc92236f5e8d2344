"""The ``postroom`` command line."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any

import click
import typer
from rich.markup import escape

from ..model.errors import PostroomError
from ._common import err_console, safe, state

__all__ = ["app", "main"]

app = typer.Typer(
    name="postroom",
    help="Asynchronous messaging for Python microservices: queues, topics, "
    "dead letters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"postroom {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    if debug:
        state.debug = True


# typer's help shows a flag's type (`--json <bool>`) as if it took a value; a flag
# takes none, so none is shown.
_display_type = typer.core.TyperOption.display_type_rich


def _flag_display_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None
    return _display_type(self, ctx)


typer.core.TyperOption.display_type_rich = _flag_display_type  # type: ignore[method-assign]


def _register() -> None:
    if app.registered_commands or app.registered_groups:
        return  # once per process: main() may run many times (in-process tests)
    from . import bench, demo

    bench.register(app)
    demo.register(app)

    from . import queues

    queues.register(app)

    from . import topics

    topics.register(app)

    from . import worker, workers

    worker.register(app)
    workers.register(app)

    from . import serve

    serve.register(app)


# typer >= 0.2x vendors click: its usage errors derive from typer.TyperException,
# not from click.ClickException (older typer raises click's own).
_TYPER_ERROR: type[Exception] = getattr(typer, "TyperException", click.ClickException)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``postroom`` command."""
    _register()
    try:
        # without standalone mode, typer returns the code of a typer.Exit
        code = app(args=argv, standalone_mode=False)
    except (click.exceptions.Abort, typer.Abort):
        err_console.print("aborted")
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except _TYPER_ERROR as exc:  # usage errors of typer's vendored click
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"error: {exc}", markup=False)
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except PostroomError as exc:
        if state.debug:
            traceback.print_exc()
        # one line: a driver's message may span several (libpq's does)
        message = escape(safe(" ".join(str(exc).split())))
        err_console.print(f"[bold red]error:[/] {message}", markup=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
