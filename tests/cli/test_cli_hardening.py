"""Hostile text never drives the terminal; malformed URLs are one clear line."""

from __future__ import annotations

import anyio
import pytest

import postroom
from postroom.model.message import QueuePolicy, Subscription

from .conftest import run_cli

# ESC (a colour and a window title), BEL, a C1 CSI and a bidi override.
EVIL = "x\x1b[31mred\x1b]0;pwned\x07\x9b2J\u202e"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def _legacy(url: str) -> None:
    """A queue and a subscription named as validation now refuses, stored
    directly in the backend (as data written by an older version would be)."""

    async def store() -> None:
        async with postroom.AsyncClient(url) as c:
            backend = c.backend
            await backend.declare_queue(EVIL, QueuePolicy(), replace=True)
            await backend.declare_queue(f"{EVIL}:s", QueuePolicy(), replace=True)
            await backend.put_subscription(
                Subscription(topic=EVIL, name="s", queue=f"{EVIL}:s")
            )

    anyio.run(store)


def _assert_clean(output: str) -> None:
    for raw in RAW:
        assert raw not in output, output


def test_listings_escape_control_characters(url: str, client: postroom.Client) -> None:
    _legacy(url)
    client.send("jobs", EVIL, headers={"h": EVIL})
    [d] = client.receive("jobs")
    client.reject(d, error=EVIL)
    client.send("jobs", {"text": EVIL})
    outputs = [
        run_cli(["queues", "--url", url]),
        run_cli(["topics", "--url", url]),
        run_cli(["subscriptions", "list", "--url", url]),
        run_cli(["peek", "jobs", "--url", url]),
        run_cli(["dlq", "list", "jobs", "--url", url]),
        run_cli(["dlq", "show", "jobs", d.id, "--url", url]),
    ]
    for result in outputs:
        assert result.code == 0, result
        _assert_clean(result.stdout + result.stderr)
    assert "\\x1b[31mred" in outputs[0].stdout  # shown, escaped
    assert "\\x1b" in outputs[5].stdout  # the body, header and error of dlq show


def test_json_output_escapes_by_json(url: str, client: postroom.Client) -> None:
    _legacy(url)
    result = run_cli(["queues", "--json", "--url", url])
    assert result.code == 0
    _assert_clean(result.stdout)
    assert "\\u001b" in result.stdout


def test_error_messages_escape_control_characters(url: str) -> None:
    result = run_cli(["peek", EVIL, "--url", url])
    assert result.code == 1
    _assert_clean(result.stderr)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("redis://", "'redis://' names no host"),
        ("rediss://", "'rediss://' names no host"),
        ("redis://:6379/0", "names no host"),
        ("redis://localhost:abc/0", "has the port 'abc'"),
        ("redis://localhost:99999/0", "has the port '99999'"),
        ("redis://localhost/zero", "has the database 'zero'"),
        ("valkey://localhost:-1", "has the port '-1'"),
        ("postgresql://localhost:abc/test", "has the port 'abc'"),
        ("postgresql://h1:5432,h2:x/test", "has the port 'x'"),
        ("redis://user:secret@localhost:0/0", "'redis://user:***@localhost:0/0'"),
        ("kafka://user:secret@host", "unknown URL scheme 'kafka'"),
        ("amqp://", "'amqp://' names no host"),
        ("amqps://guest:secret@:5671/", "names no host"),
        ("nats://", "'nats://' names no host"),
        ("nats://127.0.0.1:4222,127.0.0.1:x", "has the port 'x'"),
    ],
)
def test_malformed_urls_are_one_clear_line(bad: str, message: str) -> None:
    result = run_cli(["queues", "--url", bad])
    assert result.code == 1, result
    assert message in result.err
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # one message, wrapped


def test_send_of_a_body_over_256_kib_is_a_clear_error(url: str) -> None:
    result = run_cli(["send", "jobs", "-", "--url", url], input=b"x" * (20 << 20))
    assert result.code == 1
    assert "at most 262,144 bytes (256 KiB)" in result.err
    assert "Traceback" not in result.stderr
    assert run_cli(["peek", "jobs", "--url", url]).code == 1  # nothing was created


def test_a_multi_line_driver_error_is_printed_on_one_line() -> None:
    # libpq's "connection refused" spans two lines
    result = run_cli(["queues", "--url", "postgresql://nobody@127.0.0.1:1/x"])
    assert result.code == 1
    assert result.stderr.startswith("error: PostgreSQL at 127.0.0.1:1/x")
    assert result.stderr.strip().count("\n") == 0, result.stderr
