"""The queue commands: send, queues, peek, purge, dlq list/show/redrive/purge."""

from __future__ import annotations

import json
import re

import pytest

import postroom
from tests.cli.conftest import run_cli

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def make_dead_letters(client: postroom.Client, queue: str = "jobs") -> dict[str, str]:
    """Two real dead letters on ``queue``: one failed with a traceback, one rejected."""
    client.declare_queue(queue, max_attempts=1)
    failed = client.send(queue, {"image": "cat.png"}, headers={"trace": "t-1"})
    rejected = client.send(queue, {"image": "bad.png"})
    deliveries = {d.id: d for d in client.receive(queue, max_messages=2)}
    try:
        raise ValueError("disk full on /var/tmp")
    except ValueError as exc:
        client.retry(deliveries[failed], error=exc)
    client.reject(deliveries[rejected], error="corrupt image")
    return {"failed": failed, "rejected": rejected}


def ok(args: list[str], input: str | bytes | None = None) -> str:
    """Run a command that must succeed; return its stdout."""
    result = run_cli(args, input=input)
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    return result.stdout


# -- send ----------------------------------------------------------------------------


def test_send_prints_the_new_id(url: str, client: postroom.Client) -> None:
    out = ok(["send", "--url", url, "jobs", '{"image": "cat.png"}', "-H", "trace=a=b"])
    mid = out.strip()
    assert ULID.match(mid), out
    [msg] = client.peek("jobs")
    assert msg.id == mid
    assert msg.json() == {"image": "cat.png"}
    assert msg.headers["trace"] == "a=b"


def test_send_takes_a_group_and_a_priority(url: str, client: postroom.Client) -> None:
    low = ok(["send", "--url", url, "jobs", "low"]).strip()
    high = ok(["send", "--url", url, "jobs", "high", "--priority", "9"]).strip()
    g1 = ok(["send", "--url", url, "jobs", "g1", "--group", "acct-1"]).strip()
    ok(["send", "--url", url, "jobs", "g2", "--group", "acct-1"])
    got = client.receive("jobs", max_messages=10)
    assert [d.id for d in got] == [high, low, g1]
    assert (got[0].message.priority, got[2].message.group) == (9, "acct-1")
    bad = run_cli(["send", "--url", url, "jobs", "x", "--priority", "10"])
    assert bad.code != 0 and "priority" in bad.stderr.lower()


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ('{"n": [1, 2]}', {"n": [1, 2]}),
        ("42", 42),
        ('"quoted"', "quoted"),
        ("plain words", "plain words"),
        ("NaN", "NaN"),
        ("{not json?", "{not json?"),
    ],
)
def test_send_body_is_json_when_it_parses_else_a_string(
    url: str, client: postroom.Client, arg: str, expected: object
) -> None:
    raw = ["--raw"] if arg == "{not json?" else []
    ok(["send", "--url", url, *raw, "jobs", arg])
    [msg] = client.peek("jobs")
    assert msg.json() == expected


def test_send_dash_reads_the_body_from_stdin(url: str, client: postroom.Client) -> None:
    ok(["send", "--url", url, "jobs", "-"], input='{"from": "stdin"}\n')
    ok(["send", "--url", url, "jobs", "-"], input=b"\xff\xfe raw")
    first, second = client.peek("jobs")
    assert first.json() == {"from": "stdin"}
    assert second.body == b"\xff\xfe raw"


def test_send_dedup_key_returns_the_first_id(url: str, client: postroom.Client) -> None:
    first = ok(["send", "--url", url, "jobs", "1", "--dedup-key", "k"]).strip()
    again = ok(["send", "--url", url, "jobs", "2", "--dedup-key", "k"]).strip()
    assert first == again
    assert [m.json() for m in client.peek("jobs")] == [1]


def test_send_delay_keeps_the_message_delayed(url: str) -> None:
    ok(["send", "--url", url, "jobs", "{}", "--delay", "600"])
    [row] = json.loads(ok(["queues", "--url", url, "--json"]))
    assert (row["queue"], row["ready"], row["delayed"]) == ("jobs", 0, 1)


# -- queues and peek -----------------------------------------------------------------


def test_queues_json_and_table_show_every_depth(
    url: str, client: postroom.Client
) -> None:
    make_dead_letters(client, "jobs")
    client.send("jobs", {"n": 1})
    client.send("other", {"n": 2})
    client.receive("other")
    rows = {r["queue"]: r for r in json.loads(ok(["queues", "--url", url, "--json"]))}
    assert set(rows) == {"jobs", "other"}
    assert (rows["jobs"]["ready"], rows["jobs"]["dead"]) == (1, 2)
    assert (rows["other"]["in_flight"], rows["other"]["ready"]) == (1, 0)
    assert rows["jobs"]["oldest_age"] >= 0
    table = ok(["queues", "--url", url])
    for word in ("ready", "delayed", "in flight", "dead", "oldest age", "jobs"):
        assert word in table


def test_queues_on_an_empty_backend_says_how_to_start(url: str) -> None:
    assert "postroom send" in ok(["queues", "--url", url])
    assert json.loads(ok(["queues", "--url", url, "--json"])) == []


def test_peek_lists_messages_without_leasing_them(
    url: str, client: postroom.Client
) -> None:
    ids = client.send_many("jobs", [{"n": i} for i in range(5)])
    rows = json.loads(ok(["peek", "--url", url, "jobs", "--limit", "3", "--json"]))
    assert [r["id"] for r in rows] == ids[:3]
    assert rows[0]["body"] == {"n": 0}
    table = ok(["peek", "--url", url, "jobs"])
    assert all(mid in table for mid in ids)
    assert client.stats("jobs").ready == 5


# -- dead letters --------------------------------------------------------------------


def test_dlq_list_filters_by_reason_and_error_text(
    url: str, client: postroom.Client
) -> None:
    ids = make_dead_letters(client)
    base = ["dlq", "list", "--url", url, "jobs", "--json"]
    every = json.loads(ok(base))
    assert {(r["id"], r["reason"]) for r in every} == {
        (ids["failed"], "failed"),
        (ids["rejected"], "rejected"),
    }
    [rejected] = json.loads(ok([*base, "--reason", "rejected"]))
    assert rejected["id"] == ids["rejected"]
    [failed] = json.loads(ok([*base, "--error-contains", "DISK FULL"]))
    assert failed["error"]["type"] == "ValueError"
    assert json.loads(ok([*base, "--limit", "1"]))[0]["id"] == every[0]["id"]
    table = ok(["dlq", "list", "--url", url, "jobs"])
    assert ids["failed"] in table and "disk full" in table


def test_dlq_show_has_body_headers_error_traceback_and_history(
    url: str, client: postroom.Client
) -> None:
    ids = make_dead_letters(client)
    text = ok(["dlq", "show", "--url", url, "jobs", ids["failed"]])
    for part in (ids["failed"], "failed", "cat.png", "trace: t-1", "disk full"):
        assert part in text
    assert "Traceback (most recent call last)" in text
    assert "attempt history" in text
    data = json.loads(
        ok(["dlq", "show", "--url", url, "jobs", ids["failed"], "--json"])
    )
    assert data["reason"] == "failed"
    assert data["message"]["headers"]["trace"] == "t-1"
    assert "raise ValueError" in data["error"]["traceback"]
    [entry] = data["history"]
    assert (entry["outcome"], entry["consumer"]) == ("failed", client.consumer)


def test_dlq_redrive_moves_every_dead_letter_back(
    url: str, client: postroom.Client
) -> None:
    ids = make_dead_letters(client)
    result = run_cli(["dlq", "redrive", "--url", url, "jobs", "--yes"])
    assert result.code == 0, result
    assert "redrove 2 dead letters" in result.stdout
    assert "2/2" in result.stderr  # the progress bar
    assert client.stats("jobs").dead == 0
    back = {m.id: m for m in client.peek("jobs")}
    assert set(back) == set(ids.values())
    assert all(m.attempts == 0 and m.redrives == 1 for m in back.values())
    assert back[ids["failed"]].headers["trace"] == "t-1"


def test_dlq_redrive_ids_to_another_queue(url: str, client: postroom.Client) -> None:
    ids = make_dead_letters(client)
    out = ok(
        [
            "dlq", "redrive", "--url", url, "jobs", "--ids", ids["rejected"],
            "--to", "jobs.retry", "--rate", "100", "--yes", "--json",
        ]
    )  # fmt: skip
    assert json.loads(out)["redriven"] == [ids["rejected"]]
    assert [m.id for m in client.peek("jobs.retry")] == [ids["rejected"]]
    [left] = client.dead_letters("jobs")
    assert left.id == ids["failed"]


def test_dlq_redrive_limit_and_dry_run(url: str, client: postroom.Client) -> None:
    make_dead_letters(client)
    dry = json.loads(
        ok(["dlq", "redrive", "--url", url, "jobs", "--dry-run", "--json"])
    )
    assert len(dry["would_redrive"]) == 2
    assert client.stats("jobs").dead == 2
    ok(["dlq", "redrive", "--url", url, "jobs", "--limit", "1", "-y"])
    assert client.stats("jobs").dead == 1
    assert len(client.peek("jobs")) == 1


def test_dlq_redrive_with_nothing_dead_asks_nothing(url: str) -> None:
    ok(["send", "--url", url, "jobs", "{}"])
    assert "no dead letters" in ok(["dlq", "redrive", "--url", url, "jobs"])


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--rate", "-1"], "rate must be above 0"),
        (["--rate", "0"], "rate must be above 0"),
        (["--to", ""], "to '' is empty"),
    ],
)
def test_dlq_redrive_refuses_a_bad_option_with_nothing_dead(
    url: str, option: list[str], expected: str
) -> None:
    ok(["send", "--url", url, "jobs", "{}"])
    result = run_cli(["dlq", "redrive", "--url", url, "jobs", "--yes", *option])
    assert result.code == 1
    assert expected in result.err
    assert "Traceback" not in result.stderr


def test_destructive_commands_refuse_without_yes(
    url: str, client: postroom.Client
) -> None:
    make_dead_letters(client)
    client.send("jobs", {"n": 1})
    for args in (["dlq", "redrive"], ["dlq", "purge"], ["purge"]):
        result = run_cli([*args, "--url", url, "jobs"])
        assert result.code == 1
        assert "--yes" in result.err
    stats = client.stats("jobs")
    assert (stats.dead, stats.ready) == (2, 1)


def test_purge_and_dlq_purge(url: str, client: postroom.Client) -> None:
    make_dead_letters(client)
    client.send_many("jobs", [1, 2, 3])
    assert "purged 3 messages" in ok(["purge", "--url", url, "jobs", "--yes"])
    assert client.stats("jobs").dead == 2
    assert "purged 2 dead letters" in ok(["dlq", "purge", "--url", url, "jobs", "-y"])
    stats = client.stats("jobs")
    assert (stats.ready, stats.dead) == (0, 0)


# -- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["peek", "nosuch.queue"],
        ["dlq", "list", "nosuch.queue"],
        ["dlq", "show", "nosuch.queue", "01ABC"],
        ["dlq", "redrive", "nosuch.queue", "--yes"],
        ["dlq", "purge", "nosuch.queue", "--yes"],
        ["purge", "nosuch.queue", "--yes"],
    ],
)
def test_unknown_queue_exits_1_naming_it(url: str, args: list[str]) -> None:
    result = run_cli([*args, "--url", url])
    assert result.code == 1
    assert "'nosuch.queue' does not exist" in result.err
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_dead_letter_id_is_a_clear_error(
    url: str, client: postroom.Client
) -> None:
    make_dead_letters(client)
    result = run_cli(["dlq", "show", "--url", url, "jobs", "01NOPE"])
    assert result.code == 1
    assert "no dead letter '01NOPE'" in result.err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["queues", "--url", "kafka://x"], 1, "unknown URL scheme 'kafka'"),
        (["queues", "--url", "no-scheme"], 1, "is not a postroom URL"),
        (["send", "jobs", "{}", "-H", "novalue"], 2, "expected KEY=VALUE"),
        (["send", "jobs", "{}", "-H", "=v"], 2, "expected KEY=VALUE"),
        (["send", "jobs", "{}", "--delay", "soon"], 2, "--delay"),
        (["send", "jobs", "{}", "--delay", "-1"], 2, "--delay"),
        (["send", "bad name", "{}"], 1, "queue 'bad name' contains the whitespace"),
        (["send", "jobs", "{}", "--delay", "1e12"], 1, "delay must be between 0"),
        (["send", "jobs", "{}", "--delay", "inf"], 1, "delay must be between 0"),
        (["send", "jobs", "{}", "--delay", "nan"], 2, "--delay"),
        (["send", "nul\x00q", "{}"], 1, "control or format character"),
        (["send", "jobs", "{}", "-H", "k\x1b=v"], 1, "headers name"),
        (["peek", "jobs", "--limit", "0"], 2, "--limit"),
        (["dlq", "list", "jobs", "--reason", "bored"], 2, "not a reason"),
        (["dlq", "redrive", "jobs", "--ids", ",", "-y"], 2, "--ids"),
        (["dlq", "redrive", "jobs", "--rate", "0", "-y"], 1, "rate must be above 0"),
        (["dlq", "redrive", "jobs", "--rate", "inf", "-y"], 1, "rate must be above"),
    ],
)
def test_bad_input_is_a_clear_error(
    url: str, client: postroom.Client, args: list[str], code: int, message: str
) -> None:
    make_dead_letters(client)
    full = args if "--url" in args else [*args, "--url", url]
    result = run_cli(full)
    assert result.code == code, result
    assert message in result.err
    assert "Traceback" not in result.stderr + result.stdout
    assert client.stats("jobs").dead == 2


def test_names_that_look_like_markup_are_printed_as_they_are(url: str) -> None:
    missing = run_cli(["peek", "--url", url, "jobs[/x]"])
    assert missing.code == 1
    assert "'jobs[/x]' does not exist" in missing.err
    assert "Traceback" not in missing.stderr
    ok(["send", "--url", url, "jobs[bold]", '"[red]body"'])
    refused = run_cli(["purge", "--url", url, "jobs[bold]"])
    assert refused.code == 1
    assert "'jobs[bold]'" in refused.err
    assert "[red]body" in ok(["peek", "--url", url, "jobs[bold]"])


def test_delete_queue_removes_queue_and_dead_letters(
    url: str, client: postroom.Client
) -> None:
    make_dead_letters(client)
    client.send("jobs", {"n": 1})
    assert run_cli(["delete-queue", "--url", url, "jobs"]).code == 1
    out = ok(["delete-queue", "--url", url, "jobs", "--yes"])
    assert "deleted queue 'jobs'" in out
    assert "jobs" not in client.queues()
    result = run_cli(["delete-queue", "--url", url, "jobs", "--yes"])
    assert result.code == 1 and "jobs" in result.err
