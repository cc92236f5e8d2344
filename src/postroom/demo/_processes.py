"""Starting and stopping the demo's child processes: the service and the workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..model.errors import PostroomError

__all__ = [
    "Child",
    "DemoError",
    "Processes",
    "free_port",
    "listening_socket",
    "postroom_command",
]

# `python -c` rather than the `postroom` script: the children run on the very
# interpreter (and virtualenv) of the demo, wherever the script was installed.
_POSTROOM = "import sys; from postroom.cli import main; main(sys.argv[1:])"


class DemoError(PostroomError):
    """The demo could not run; the message says which part failed and where its
    log is."""


def postroom_command(*args: str) -> list[str]:
    """The command line of ``postroom ARGS...`` on this interpreter."""
    return [sys.executable, "-c", _POSTROOM, *args]


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def listening_socket() -> socket.socket:
    """A TCP socket listening on a free loopback port, to hand to a server process
    (no window in which another process could take the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass
class Child:
    """One child process, its output going to a log file."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None

    def start(self, env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> None:
        """Start the process in its own session (Ctrl-C is ours to forward)."""
        self._log_file = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            pass_fds=pass_fds,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the process's output."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Close the log file (after the process has ended)."""
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@dataclass
class Processes:
    """The demo's children, stopped together (SIGTERM, then SIGKILL after a grace)."""

    folder: Path
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], pass_fds: tuple[int, ...] = ()
    ) -> Child:
        """Start ``argv`` as the child ``name`` (log in ``logs/<name>.log``),
        passing it the file descriptors ``pass_fds``."""
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        child = Child(name, argv, logs / f"{name}.log")
        self.children.append(child)
        child.start({**os.environ, **self.env}, pass_fds)
        return child

    def check(self) -> None:
        """Raise :class:`DemoError` if a child has exited."""
        for child in self.children:
            if child.proc is not None and not child.alive():
                raise DemoError(
                    f"the {child.name} process exited with code "
                    f"{child.proc.returncode}; its log ({child.log}) ends with:\n"
                    f"{child.log_tail()}"
                )

    def stop(self, grace: float = 15.0) -> None:
        """Terminate every child and wait for it; kill those that outlive ``grace``."""
        for child in self.children:
            if child.alive() and child.proc is not None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
            child.close()
