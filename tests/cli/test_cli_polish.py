"""The command line's finish: version, help, JSON bodies, widths, bad JSON, serve."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime

import postroom
from postroom.model.workers import WorkerInfo
from tests.cli.conftest import run_cli
from tests.cli.test_cli_process import postroom_cmd
from tests.cli.test_queue_commands import make_dead_letters, ok


def test_version_prints_the_package_version() -> None:
    assert ok(["--version"]) == f"postroom {postroom.__version__}\n"


def test_help_shows_flags_without_a_value() -> None:
    out = ok(["peek", "--help"])
    assert "--json" in out and "--limit" in out
    assert "<bool>" not in out
    assert "<int range>" in out  # options taking a value still say which


def test_json_gives_bodies_as_json_values(url: str, client: postroom.Client) -> None:
    client.send("jobs", {"image": "cat.png", "sizes": [64, 128]})
    client.send("jobs", b"\x00\xff")
    [as_json, as_bytes] = json.loads(ok(["peek", "--url", url, "--json", "jobs"]))
    assert as_json["body"] == {"image": "cat.png", "sizes": [64, 128]}
    assert "body" not in as_bytes and as_bytes["body_base64"] == "AP8="


def test_dead_letter_json_gives_the_body_as_a_json_value(
    url: str, client: postroom.Client
) -> None:
    ids = make_dead_letters(client)
    listed = json.loads(ok(["dlq", "list", "--url", url, "--json", "jobs"]))
    assert {d["message"]["body"]["image"] for d in listed} == {"cat.png", "bad.png"}
    shown = json.loads(
        ok(["dlq", "show", "--url", url, "--json", "jobs", ids["failed"]])
    )
    assert shown["message"]["body"] == {"image": "cat.png"}


def test_tables_are_not_cut_when_stdout_is_not_a_terminal(
    url: str, client: postroom.Client
) -> None:
    name = "q." + "long-queue-name-" * 8
    body = "a body longer than any terminal column " * 5
    client.send(name, body)
    queues = ok(["queues", "--url", url])
    assert name in queues
    peeked = ok(["peek", "--url", url, name])
    assert json.dumps(body) in peeked
    assert all(line == line.rstrip() for line in peeked.splitlines())


def test_send_of_broken_json_says_so_and_sends_nothing(
    url: str, client: postroom.Client
) -> None:
    result = run_cli(["send", "--url", url, "jobs", '{"image": cat.png}'])
    assert result.code == 2
    assert "looks like JSON but does not parse" in result.err
    assert "--raw" in result.err
    assert "jobs" not in client.stats()


def test_send_raw_sends_the_text_as_a_string(url: str, client: postroom.Client) -> None:
    ok(["send", "--url", url, "--raw", "jobs", '{"image": cat.png}'])
    ok(["send", "--url", url, "--raw", "jobs", "42"])
    assert [m.json() for m in client.peek("jobs")] == ['{"image": cat.png}', "42"]


def test_publish_of_broken_json_says_so(url: str) -> None:
    result = run_cli(["publish", "--url", url, "events", "[1, 2"])
    assert result.code == 2
    assert "looks like JSON but does not parse" in result.err


def test_serve_on_a_port_in_use_is_one_line_and_exit_3() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = postroom_cmd("serve", "--url", "memory://", "--port", str(port))
    assert done.returncode == 3, done
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"error: port {port} on 127.0.0.1 is in use (another postroom serve?): "
        "stop that process or pass --port"
    ]


def test_workers_lists_registered_processes(url: str, client: postroom.Client) -> None:
    assert "no workers" in ok(["workers", "--url", url])
    now = datetime.now(UTC)
    info = WorkerInfo("h:1:ab", "h", 1, ("jobs",), 4, 1, 10, 2, now, now, 30.0)
    client.put_worker(info)
    [doc] = json.loads(ok(["workers", "--url", url, "--json"]))
    assert doc["id"] == "h:1:ab" and doc["queues"] == ["jobs"]
    assert (doc["in_flight"], doc["handled"], doc["failed"]) == (1, 10, 2)
    table = ok(["workers", "--url", url])
    assert "jobs" in table and "concurrency" in table
