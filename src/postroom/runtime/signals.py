"""SIGTERM/SIGINT while a worker starts, before its event loop handles them.

Importing the app, connecting and creating subscriptions take a while; a signal
in that time would end the process by the default action (exit 143, nothing
logged). :class:`StartupSignals` is installed first: it logs the signal and
records it, and :meth:`postroom.Worker.serve` stops at once when one came.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

__all__ = ["StartupSignals"]

log = logging.getLogger("postroom.runtime.worker")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StartupSignals:
    """Records SIGTERM/SIGINT until the worker's own handling takes over."""

    def __init__(self) -> None:
        self.received: list[int] = []

    @classmethod
    def install(cls) -> StartupSignals:
        """Handle the signals from now on (main thread only)."""
        startup = cls()
        for signum in _SIGNALS:
            signal.signal(signum, startup._handle)
        return startup

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            log.info("%s: shutting down", signal.Signals(signum).name)
        self.received.append(signum)

    @property
    def stopping(self) -> bool:
        """Whether a signal came."""
        return bool(self.received)
