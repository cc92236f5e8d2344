"""SQLite plumbing: URL settings, the named queries, connections and transactions."""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qsl, urlsplit

from ...model.errors import BackendError, ConfigurationError

__all__ = [
    "QUERIES",
    "SCHEMA_VERSION",
    "SqliteSettings",
    "backend_error",
    "begin_immediate",
    "init_schema",
    "load_queries",
    "open_connection",
    "write",
]

# 2: postroom_durations, 3: postroom_workers, 4: postroom_samples, 5: message
# groups, priorities and rate limits, 6: blocked group members (an older file
# gains them on connect)
SCHEMA_VERSION = 6
MIN_SQLITE = (3, 35, 0)  # UPDATE ... RETURNING
_SYNC_MODES = ("off", "normal", "full", "extra")
# Pauses between tries to take the write lock while another process holds it
# (the last one repeats until the busy timeout). SQLite's own busy handler sleeps
# 1, 2, 5, 10... ms between tries, so a writer that just missed a transaction of a
# fraction of a millisecond waited a millisecond or more.
_LOCK_PAUSES = (0.0001, 0.0002, 0.0005, 0.001)
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries() -> dict[str, str]:
    """The named blocks of ``queries.sql`` (``-- name: x`` starts block ``x``)."""
    text = resources.files(__package__).joinpath("queries.sql").read_text("utf-8")
    parts = _NAME.split(text)
    return {
        name: body.strip().removesuffix(";")
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


QUERIES = load_queries()


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    """Where the database is and how connections to it behave.

    From the URL ``sqlite:///relative/path.db`` or ``sqlite:////abs/path.db`` with
    optional query parameters ``busy_timeout`` (seconds a writer waits for the
    lock, default 5), ``synchronous`` (``full`` by default: a commit is on disk
    before ``send`` returns; ``normal`` survives process crashes but may lose the
    last commits on power loss) and ``poll_interval`` (seconds between checks
    for commits by other processes while a consumer waits; ``None``, the
    default, means 0.001 s after a log write where inotify tells of them, and
    0.005 s all the time where it does not; see ``_watch.py``).
    """

    path: str
    busy_timeout: float = 5.0
    synchronous: str = "full"
    poll_interval: float | None = None

    @classmethod
    def from_url(cls, url: str) -> SqliteSettings:
        """Parse a ``sqlite://`` URL."""
        parts = urlsplit(url)
        hint = "use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        if parts.netloc:
            raise ConfigurationError(
                f"{url!r} names a host; a sqlite URL has none: {hint}"
            )
        raw = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not raw or raw == ":memory:" or raw.endswith("/"):
            raise ConfigurationError(
                f"{url!r} names no database file: {hint} (or memory:// for an "
                "in-process store)"
            )
        params = dict(parse_qsl(parts.query))
        unknown = set(params) - {"busy_timeout", "synchronous", "poll_interval"}
        if unknown:
            raise ConfigurationError(
                f"unknown sqlite URL option(s) {', '.join(sorted(unknown))} in "
                f"{url!r}: known are busy_timeout, synchronous and poll_interval"
            )
        try:
            busy = float(params.get("busy_timeout", 5.0))
            raw_poll = params.get("poll_interval")
            poll = None if raw_poll is None else float(raw_poll)
        except ValueError as exc:
            raise ConfigurationError(
                f"{url!r}: {exc}; give seconds, e.g. 2.5"
            ) from None
        sync = params.get("synchronous", "full").lower()
        if sync not in _SYNC_MODES or busy < 0 or not 0 < (poll or 0.001) <= 1:
            raise ConfigurationError(
                f"{url!r}: synchronous must be one of {', '.join(_SYNC_MODES)}, "
                "busy_timeout >= 0 and 0 < poll_interval <= 1 (seconds)"
            )
        return cls(os.path.abspath(raw), busy, sync, poll)


def open_connection(
    settings: SqliteSettings, *, busy: bool = True
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit).

    ``busy=False`` makes every lock conflict fail at once instead of waiting (for
    the watcher, which must never block the event loop).
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise BackendError(
            f"postroom needs SQLite >= 3.35 for UPDATE ... RETURNING, this Python "
            f"has {sqlite3.sqlite_version}: use a Python built with a newer SQLite"
        )
    folder = os.path.dirname(settings.path)
    if not os.path.isdir(folder):
        raise ConfigurationError(
            f"cannot open {settings.path}: the directory {folder} does not exist; "
            "create it or fix the sqlite:// URL"
        )
    try:
        conn = sqlite3.connect(
            settings.path,
            timeout=settings.busy_timeout if busy else 0.0,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=64,
            factory=_Connection,
        )
        conn.busy_ms = round(settings.busy_timeout * 1000) if busy else 0
        conn.execute(f"PRAGMA synchronous = {settings.synchronous}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -16000")
        # After a burst the log is truncated back to this size at checkpoints.
        conn.execute("PRAGMA journal_size_limit = 67108864")
    except sqlite3.Error as exc:
        raise backend_error(exc, settings.path) from exc
    return conn


def _switch_to_wal(conn: sqlite3.Connection, attempts: int = 200) -> str:
    """``PRAGMA journal_mode = WAL``, tried again while another process holds the
    lock: SQLite does not call the busy handler for this switch, so processes
    creating a fresh database at once would otherwise fail with "locked"."""
    for _ in range(attempts - 1):
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return str(mode)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    return str(mode)


def init_schema(conn: sqlite3.Connection, path: str) -> None:
    """Switch to WAL and create the tables (idempotent, safe to race)."""
    mode = _switch_to_wal(conn)
    if str(mode).lower() != "wal":
        raise BackendError(
            f"could not switch {path} to WAL mode (it is in {mode!r} mode): postroom "
            "needs a local filesystem that supports shared memory, not a network share"
        )
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise BackendError(
            f"{path} was created by a newer postroom (schema {version}, this one "
            f"knows {SCHEMA_VERSION}): upgrade postroom"
        )
    if version == SCHEMA_VERSION:
        return
    with write(conn):
        (version,) = conn.execute("PRAGMA user_version").fetchone()  # under the lock
        if version == SCHEMA_VERSION:
            return
        # A file of schema 1 to 4 takes migrate_5 then migrate_6; a new file none.
        steps = range(max(version, 4) + 1, SCHEMA_VERSION + 1) if version else ()
        for step in steps:
            for statement in QUERIES[f"migrate_{step}"].split(";\n"):
                conn.execute(statement)
        for statement in QUERIES["schema"].split(";\n"):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class _Connection(sqlite3.Connection):
    """A connection that knows its busy timeout (see :func:`begin_immediate`)."""

    busy_ms = 0


def begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``: take the write lock, tried again after short pauses
    (``_LOCK_PAUSES``) while another process holds it, up to the connection's busy
    timeout; the other statements keep SQLite's own busy handler."""
    busy_ms = getattr(conn, "busy_ms", 0)
    if not busy_ms:
        conn.execute("BEGIN IMMEDIATE")
        return
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + busy_ms / 1000
        for attempt in itertools.count():
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(_LOCK_PAUSES[min(attempt, len(_LOCK_PAUSES) - 1)])
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")


@contextmanager
def write(conn: sqlite3.Connection) -> Iterator[None]:
    """One write operation, atomic on its own.

    Alone it is a transaction whose ``BEGIN IMMEDIATE`` takes the lock up front;
    inside a group commit (see ``_executor.py``) it is a savepoint, rolled back
    alone when it fails.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT op")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            raise
        conn.execute("RELEASE op")
        return
    begin_immediate(conn)
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def backend_error(exc: sqlite3.Error, path: str) -> BackendError:
    """A driver error as a postroom error that says what to do."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return BackendError(
            f"SQLite database {path} stayed locked by another process beyond the "
            "busy timeout: raise it with ?busy_timeout=SECONDS in the URL, or move "
            f"heavy traffic to a server backend ({text})"
        )
    if "unable to open" in text:
        return BackendError(
            f"cannot open SQLite database {path}: check the path and its "
            f"permissions ({text})"
        )
    return BackendError(f"SQLite error on {path}: {text}")
