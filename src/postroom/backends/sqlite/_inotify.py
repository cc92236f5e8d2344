"""A Linux inotify watch on one file, through ``ctypes`` (no dependency).

Used to learn, at no idle cost, that another process wrote the database's
write-ahead log. Anywhere inotify is missing (macOS, Windows, a seccomp sandbox)
:func:`watch_file` returns ``None`` and the caller polls instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys

__all__ = ["FileWatch", "watch_file"]

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


class FileWatch:
    """An inotify descriptor that becomes readable when the file is written."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def drain(self) -> None:
        """Discard the pending events (only their arrival matters)."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while os.read(self.fd, 4096):
                pass

    def close(self) -> None:
        """Close the descriptor."""
        os.close(self.fd)


@functools.cache
def _libc() -> ctypes.CDLL:
    # Looked up once: find_library runs ldconfig in a subprocess (about 10 ms,
    # paid by every idle wait that starts a watch before this was cached).
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def watch_file(path: str) -> FileWatch | None:
    """Watch ``path`` for writes, or ``None`` where inotify is not available."""
    if not sys.platform.startswith("linux") or not os.path.exists(path):
        return None
    try:
        libc = _libc()
        fd = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY) < 0:
        os.close(fd)
        return None
    return FileWatch(fd)
