"""SQLite specifics: URLs, durability across reopening, group commit, errors."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import postroom
from postroom.backends.sqlite import SqliteBackend, SqliteSettings


def test_sqlite_url_paths_relative_and_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert SqliteSettings.from_url("sqlite:///data/q.db").path == str(
        tmp_path / "data" / "q.db"
    )
    assert SqliteSettings.from_url("sqlite:////abs/q.db").path == "/abs/q.db"
    settings = SqliteSettings.from_url(
        "sqlite:///q.db?busy_timeout=1.5&synchronous=NORMAL&poll_interval=0.01"
    )
    assert (settings.busy_timeout, settings.synchronous, settings.poll_interval) == (
        1.5,
        "normal",
        0.01,
    )
    with postroom.connect("sqlite:///rel.db") as c:
        c.send("q", 1)
    assert (tmp_path / "rel.db").exists()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite://host/q.db", "names a host"),
        ("sqlite:///q.db?fast=1", "unknown sqlite URL option"),
        ("sqlite:///q.db?synchronous=sometimes", "synchronous must be one of"),
        ("sqlite:///q.db?busy_timeout=soon", "give seconds"),
    ],
)
def test_sqlite_bad_urls_are_clear_errors(url: str, match: str) -> None:
    with pytest.raises(postroom.ConfigurationError, match=match):
        postroom.open_backend(url)


def test_sqlite_missing_directory_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(postroom.ConfigurationError, match="does not exist"):
        postroom.connect(f"sqlite:///{tmp_path}/nowhere/q.db")


def test_sqlite_database_from_a_newer_postroom_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(postroom.BackendError, match="newer postroom"):
        postroom.connect(f"sqlite:///{path}")


def test_sqlite_state_survives_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/keep.db"
    with postroom.connect(url) as c:
        c.declare_queue("q", max_attempts=2)
        mid = c.send("q", {"k": 1}, dedup_key="once")
        leased = c.receive("q", visibility_timeout=60)[0]
        c.send("q", "later", delay=60)
    with postroom.connect(url) as c:
        assert c.queue_policy("q").max_attempts == 2
        st = c.stats("q")
        assert (st.ready, st.delayed, st.in_flight) == (0, 1, 1)
        assert c.send("q", {"k": 2}, dedup_key="once") == mid
        c.retry(leased, delay=0, error="after a restart")
        again = c.receive("q")[0]
        assert again.id == mid and again.attempts == 2


async def _retry_all(url: str) -> tuple[int, list[str]]:
    async with postroom.connect_async(url) as c:
        await c.declare_queue("q", max_attempts=10)
        await c.send_many("q", list(range(50)))
        got = await c.receive("q", max_messages=50)
        await c.ack(got[0])  # its lease is gone: retrying it must fail alone
        results = await asyncio.gather(
            *(c.retry(d, delay=0, error="again") for d in got),
            return_exceptions=True,
        )
        lost = [d.id for d, r in zip(got, results, strict=True) if r is not None]
        return (await c.stats("q")).ready, lost


def test_sqlite_concurrent_operations_fail_alone(tmp_path: Path) -> None:
    ready, lost = asyncio.run(_retry_all(f"sqlite:///{tmp_path}/group.db"))
    assert ready == 49
    assert len(lost) == 1


async def _wait_for_delayed(url: str) -> float:
    async with postroom.connect_async(url) as c:
        await c.send("q", "soon", delay=0.3)
        backend = c.backend
        assert isinstance(backend, SqliteBackend)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await backend.wait("q", 30.0)
        return loop.time() - start


def test_sqlite_wait_returns_when_a_delayed_message_comes_due(tmp_path: Path) -> None:
    waited = asyncio.run(_wait_for_delayed(f"sqlite:///{tmp_path}/due.db"))
    assert 0.1 < waited < 29.0


def _backend_threads() -> list[str]:
    import threading

    return [
        t.name for t in threading.enumerate() if t.name.startswith("postroom-sqlite")
    ]


def test_sqlite_closing_ends_the_backend_thread(tmp_path: Path) -> None:
    before = _backend_threads()
    with postroom.connect(f"sqlite:///{tmp_path}/t.db") as c:
        c.send("q", 1)
        assert len(_backend_threads()) == len(before) + 1
    assert _backend_threads() == before
    with pytest.raises(postroom.ConfigurationError):
        postroom.connect(f"sqlite:///{tmp_path}/missing/t.db")
    assert _backend_threads() == before


def test_sqlite_sync_send_waits_without_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync client's send is handed to the backend's thread and waited for
    from the caller's thread (no event loop); it commits as the async send
    does, concurrent ones together, and a queue deleted meanwhile is refused."""
    url = f"sqlite:///{tmp_path}/q.db"
    with postroom.connect(url) as client, postroom.connect(url) as other:
        client.declare_queue("q")

        def no_loop(*args: object, **kwargs: object) -> None:
            raise AssertionError("the send went through the event loop")

        with monkeypatch.context() as m:
            m.setattr(client, "_call", no_loop)
            ids = [client.send("q", {"n": n}) for n in range(3)]
            got = other.receive("q", max_messages=5)
            assert [d.message.id for d in got] == ids
            other.delete_queue("q")
            with pytest.raises(postroom.QueueNotFound):
                client.send("q", {"n": 3})
        client.declare_queue("q")
        sent = client.send("q", {"n": 4})
        assert [d.message.id for d in other.receive("q", max_messages=5)] == [sent]
