"""``postroom worker MODULE:APP``: run an App's handlers, in one or more processes."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Annotated

import typer

from ..client.core import AsyncClient
from ..model import arguments as check
from ..model import validate
from ..model.errors import ConfigurationError, InvalidArgument
from ..runtime.app import App
from ..runtime.egress import ALLOW_ENV, EgressPolicy
from ..runtime.outcomes import JsonFormatter
from ..runtime.signals import StartupSignals
from ..runtime.worker import run_worker, select_handlers
from ._common import PushAllow

__all__ = ["load_app", "register"]

log = logging.getLogger("postroom.cli.worker")

_EXAMPLE = "e.g. `postroom worker myservice.tasks:app`"
# How often a parent of several worker processes looks at its children.
_SUPERVISE_SECONDS = 0.2
_RESTART_PAUSE_SECONDS = 1.0
_CHILD_CODE = "from postroom.cli import main; main()"
# Most worker processes started when --processes is not given (one per CPU up to
# this): beyond a few, processes mostly contend for the backend's locks.
MAX_DEFAULT_PROCESSES = 8
# Most worker processes --processes may ask for.
MAX_PROCESSES = 256


def default_processes(client: AsyncClient) -> int:
    """Worker processes ``postroom worker`` starts without ``--processes``: one per
    CPU this process may run on, at most :data:`MAX_DEFAULT_PROCESSES`; one for a
    backend that lives in one process (``memory://``)."""
    if not client.capabilities.cross_process:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_PROCESSES))


def _import_module(name: str) -> object:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` would: the current directory
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"cannot import module {name!r} (no module named {exc.name!r}): run "
                "the command from the directory that contains it, or add that "
                f"directory to PYTHONPATH; {_EXAMPLE}"
            ) from exc
        raise ConfigurationError(
            f"importing module {name!r} failed: it needs {exc.name!r}, which is not "
            "installed: install it in this environment"
        ) from exc
    except Exception as exc:
        raise ConfigurationError(
            f"importing module {name!r} failed: {type(exc).__name__}: {exc} (fix the "
            "module; `postroom --debug worker ...` shows the traceback)"
        ) from exc


def load_app(target: str) -> App:
    """Import ``MODULE:ATTRIBUTE`` (attribute ``app`` by default); it must be an App."""
    module_name, _, attr = target.partition(":")
    if not module_name or module_name.startswith("."):
        raise ConfigurationError(
            f"{target!r} is not MODULE:APP naming a postroom.App; {_EXAMPLE}"
        )
    obj = _import_module(module_name)
    path = attr or "app"
    for part in path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {path!r}: name the "
                f"postroom.App object after the colon; {_EXAMPLE}"
            ) from None
    if not isinstance(obj, App):
        raise ConfigurationError(
            f"{module_name}:{path} is of type {type(obj).__name__!r}, not a "
            "postroom.App: name the object built with `app = postroom.App()`"
        )
    return obj


def _setup_logging(level: str, log_format: str = "text") -> None:
    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigurationError(
            f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR"
        )
    if log_format not in ("text", "json"):
        raise ConfigurationError(f"unknown log format {log_format!r}: use text or json")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)s [%(process)d] %(name)s: "
                "%(message)s",
                datefmt="%Y-%m-%d %H:%M:%S",
            )
        )
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _exit_hard_if_threads_left(code: int) -> None:
    """Exit at once when sync handlers were abandoned in threads (timeout or
    shutdown): Python would otherwise wait for them to return."""
    others = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if others:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _child_args(
    target: str,
    concurrency: int | None,
    grace: float,
    url: str | None,
    queues: str | None,
    push: bool,
    log_level: str,
    log_format: str,
) -> list[str]:
    args = ["worker", target, "--processes", "1", "--grace", repr(grace)]
    args += ["--log-level", log_level, "--log-format", log_format]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    if url is not None:
        args += ["--url", url]
    if queues is not None:
        args += ["--queues", queues]
    if push:
        args.append("--push")
    return [*args, "--parent-pid", str(os.getpid())]


class _Supervisor:
    """Runs ``count`` worker processes; forwards SIGTERM/SIGINT to them.

    A child that is killed (e.g. by the OOM killer) or stopped on its own is started
    again; a child that exits with an error stops them all, and its exit code is
    returned.
    """

    def __init__(self, args: list[str], count: int) -> None:
        self.cmd = [sys.executable, "-c", _CHILD_CODE, *args]
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stopping = False
        self.forwarded: set[int] = set()
        self.signalled: set[int] = set()

    def _start(self) -> subprocess.Popen[bytes]:
        # A session of its own: a terminal's Ctrl-C reaches the children only once,
        # through the parent.
        return subprocess.Popen(self.cmd, start_new_session=True)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.forwarded.add(signum)
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signum)
                self.signalled.add(proc.pid)

    def _start_all(self) -> None:
        """Start the children one by one; a signal meanwhile stops the starting
        and reaches every child started, the one being started included."""
        while len(self.procs) < self.count and not self.stopping:
            proc = self._start()
            self.procs.append(proc)
            if self.stopping and proc.pid not in self.signalled:
                self.signalled.add(proc.pid)
                proc.send_signal(max(self.forwarded))

    def _check(self, i: int) -> int | None:
        code = self.procs[i].poll()
        if code is None or self.stopping:
            return None
        if code > 0:
            return code
        how = f"died (signal {-code})" if code < 0 else "stopped"
        log.warning("worker process %d %s: starting another", self.procs[i].pid, how)
        time.sleep(_RESTART_PAUSE_SECONDS)
        self.procs[i] = self._start()
        return None

    def run(self) -> int:
        """Start the children, watch them, return the exit code."""
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        self._start_all()
        code = 0
        while not self.stopping:
            for i in range(len(self.procs)):
                failed = self._check(i)
                if failed:
                    log.error("worker process exited with code %d: stopping", failed)
                    code = failed
                    self._forward(signal.SIGTERM, None)
                    break
            time.sleep(_SUPERVISE_SECONDS)
        for proc in self.procs:
            rc = proc.wait()
            if rc < 0 and -rc in self.forwarded:
                rc = 0  # the signal came before its worker started: nothing held
            if rc != 0 and code == 0:
                code = rc if rc > 0 else 128 - rc
        return code


def _export_push_allow(entries: list[str]) -> None:
    """Add ``--push-allow`` entries to POSTROOM_PUSH_ALLOW, which this process's
    pusher and every worker process it starts read."""
    EgressPolicy.parse(entries)  # a bad entry fails here, once
    current = os.environ.get(ALLOW_ENV, "")
    os.environ[ALLOW_ENV] = ",".join(e for e in [current, *entries] if e.strip())


def worker(
    target: Annotated[
        str, typer.Argument(metavar="MODULE:APP", help="The postroom.App to run.")
    ],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Messages handled at once per queue (default: each handler's own).",
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            "-p",
            min=1,
            help="Worker processes to run (default: one per CPU, at most 8; 1 for "
            "memory://).",
        ),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0.0,
            help="Seconds running handlers get to finish on SIGTERM/SIGINT.",
        ),
    ] = 30.0,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="Backend URL (default: the App's, i.e. POSTROOM_URL)."
        ),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option("--queues", "-q", help="Only these queues (comma-separated)."),
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Also deliver HTTP push subscriptions.")
    ] = False,
    push_allow: PushAllow = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "INFO",
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            metavar="text|json",
            help="Log lines as text or as JSON lines (one object per line).",
        ),
    ] = "text",
    parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run the handlers of MODULE:APP until SIGTERM or Ctrl-C."""
    _setup_logging(log_level, log_format)
    # Before anything slow: a signal while the app is imported or the backend
    # connected is logged and stops the worker cleanly (exit 0).
    startup = StartupSignals.install()
    if push_allow:
        _export_push_allow(push_allow)
    check.check_worker(concurrency, grace)  # in the parent: one error, not one each
    if processes is not None:
        validate.count(processes, "processes", 1, MAX_PROCESSES)
    app = load_app(target)  # also in the parent: a bad target fails once, early
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    if queues is not None and not names:
        raise InvalidArgument(
            f"--queues {queues!r} names no queue: give comma-separated queue names, "
            "e.g. --queues images.resize,images.delete"
        )
    select_handlers(app, names, allow_none=push)  # unknown queue names fail here
    client = AsyncClient(url or app.url)  # a malformed URL fails once, not per child
    if startup.stopping:
        log.info("worker stopped before it started")
        return
    if processes is None:
        processes = default_processes(client)
    if processes > 1:
        args = _child_args(
            target, concurrency, grace, url, queues, push, log_level, log_format
        )
        raise typer.Exit(_Supervisor(args, processes).run())
    stopped = run_worker(
        app,
        concurrency=concurrency,
        grace=grace,
        queues=names,
        url=url,
        push=push,
        parent_pid=parent_pid,
        startup=startup,
    )
    if stopped.abandoned_threads:
        _exit_hard_if_threads_left(0)


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command to the ``postroom`` command."""
    app.command("worker")(worker)
