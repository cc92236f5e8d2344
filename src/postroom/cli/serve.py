"""``postroom serve``: run the HTTP API and dashboard with uvicorn."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..model.errors import InvalidArgument, MissingDependency
from ._common import PushAllow, Url, err_console, fail

if TYPE_CHECKING:
    from ..server import Token

__all__ = ["register"]

# uvicorn's log levels.
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _tokens(tokens_file: Path | None) -> list[Token]:
    from ..server import load_tokens_file, parse_tokens_env

    tokens: list[Token] = []
    if tokens_file is not None:
        tokens.extend(load_tokens_file(tokens_file))
    env = os.environ.get("POSTROOM_TOKENS", "")
    if env.strip():
        tokens.extend(parse_tokens_env(env))
    return tokens


def _env_hosts() -> list[str]:
    return os.environ.get("POSTROOM_ALLOWED_HOSTS", "").replace(",", " ").split()


def serve(
    url: Url = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--tokens-file",
            help="TOML or JSON file of bearer tokens (also POSTROOM_TOKENS).",
            dir_okay=False,
        ),
    ] = None,
    no_push: Annotated[
        bool, typer.Option("--no-push", help="Do not deliver push subscriptions.")
    ] = False,
    push_allow: PushAllow = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="HOST",
            help="Another Host header accepted without tokens (repeatable; also "
            "POSTROOM_ALLOWED_HOSTS).",
        ),
    ] = None,
    max_body: Annotated[
        int,
        typer.Option("--max-body", min=1, help="Largest request body in bytes."),
    ] = 256 * 1024,
    log_level: Annotated[
        str, typer.Option(help="uvicorn log level: " + ", ".join(_LOG_LEVELS) + ".")
    ] = "info",
) -> None:
    """Serve the HTTP API, SQS-compatible endpoint, dashboard, /metrics, /healthz."""
    if log_level.lower() not in _LOG_LEVELS:
        raise InvalidArgument(
            f"--log-level {log_level!r} is not a log level: use one of "
            + ", ".join(_LOG_LEVELS)
        )
    try:
        import uvicorn

        from ..runtime.egress import EgressPolicy
        from ..server import check_bind, create_app, default_hosts
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            f"postroom serve needs {exc.name!r}: pip install 'postroom[server]'"
        ) from exc
    tokens = _tokens(tokens_file)
    check_bind(host, tokens)
    egress = EgressPolicy.from_env().with_entries(push_allow or ())
    hosts = [*default_hosts(host, port), *(allow_host or ()), *_env_hosts()]
    app = create_app(
        url,
        tokens=tokens,
        push=not no_push,
        max_body_bytes=max_body,
        egress=egress,
        allowed_hosts=hosts,
    )
    sock = _listen(host, port)
    mode = f"{len(tokens)} token(s)" if tokens else "no tokens (loopback only)"
    err_console.print(f"postroom serve on http://{host}:{port} with {mode}")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=5,
        proxy_headers=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


# `postroom serve` exits with this code when its address is taken (docs/cli.md).
EXIT_ADDRESS_IN_USE = 3


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``; a port in use is one line and exit 3
    (uvicorn would log a traceback-like error and exit 1)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is in use (another postroom serve?): "
                "stop that process or pass --port",
                EXIT_ADDRESS_IN_USE,
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.set_inheritable(True)
    return sock


def register(app: typer.Typer) -> None:
    """Add ``postroom serve`` to the command line."""
    app.command("serve")(serve)
