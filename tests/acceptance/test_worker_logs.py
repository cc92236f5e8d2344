"""A worker logs one line for each message that did not succeed: retried (when,
why), rejected, dead-lettered (queue, id, reason, error), with the trace id."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

import postroom
from postroom.runtime.outcomes import OUTCOME_LOGGER, JsonFormatter, trace_id
from postroom.testing.workers import NO_BACKOFF, running, wait_until

from .conftest import POSTROOM

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def outcome_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(r.postroom)  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == OUTCOME_LOGGER
    ]


def test_each_failed_message_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    url = "memory://worker-logs"
    caplog.set_level(logging.INFO, logger=OUTCOME_LOGGER)
    app = postroom.App(url)

    @app.handler("jobs")
    def handle(msg: postroom.Message) -> None:
        action = msg.json()["action"]
        if action == "retry" and msg.attempts == 1:
            raise postroom.Retry(delay=0.05, reason="printer busy")
        if action == "reject":
            raise postroom.Reject("image is corrupt")
        if action == "fail":
            raise ValueError("disk full\non /var/tmp")

    @app.handler("typed")
    def typed(body: dict[str, str]) -> None:
        raise AssertionError("never called: the body does not decode")

    with postroom.connect(url) as client:
        client.declare_queue("jobs", max_attempts=2, backoff=NO_BACKOFF)
        retried = client.send("jobs", {"action": "retry"})
        rejected = client.send("jobs", {"action": "reject"})
        failed = client.send(
            "jobs", {"action": "fail"}, headers={"traceparent": TRACEPARENT}
        )
        client.send("typed", b"\xff not json")
        with running(app, url):
            wait_until(lambda: client.stats("jobs").dead == 2)
            wait_until(lambda: client.stats("typed").dead == 1)
            wait_until(lambda: client.stats("jobs").ready == 0)
    lines = outcome_records(caplog)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_id.setdefault(line["id"], []).append(line)
    [retry] = by_id[retried]
    assert retry["event"] == "retried" and retry["reason"] == "retry"
    assert retry["retry_in"] == 0.05 and retry["retry_at"].endswith("Z")
    assert retry["error"] == "Retry: printer busy"
    [reject] = by_id[rejected]
    assert (reject["event"], reject["reason"]) == ("rejected", "rejected")
    assert reject["error"] == "Reject: image is corrupt"
    assert reject["dead_letter_queue"] == "jobs.dead"
    first, dead = by_id[failed]
    assert (first["event"], first["reason"], first["attempt"]) == (
        "retried",
        "failed",
        1,
    )
    assert (dead["event"], dead["reason"], dead["attempt"]) == (
        "dead_lettered",
        "failed",
        2,
    )
    assert dead["error"] == "ValueError: disk full on /var/tmp"  # one line
    assert first["trace_id"] == dead["trace_id"] == TRACE
    [undecodable] = [r for r in lines if r["reason"] == "undecodable"]
    assert undecodable["event"] == "rejected"
    # send adds a traceparent only when an OpenTelemetry SDK is configured (as
    # another test of this session may have done): the line says what it holds
    with postroom.connect(url) as client:
        [dead] = client.dead_letters("typed")
    assert undecodable.get("trace_id") == trace_id(dead.message.headers)
    assert len(lines) == 5  # one per failed attempt, none for the success


def test_json_formatter_writes_the_fields_as_keys() -> None:
    record = logging.LogRecord(OUTCOME_LOGGER, logging.WARNING, "", 0, "x", (), None)
    record.postroom = {"event": "dead_lettered", "queue": "jobs", "id": "01"}
    doc = json.loads(JsonFormatter().format(record))
    assert doc["event"] == "dead_lettered" and doc["queue"] == "jobs"
    assert doc["level"] == "WARNING" and doc["time"].endswith("Z")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (TRACEPARENT, TRACE),
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None),
        ("garbage", None),
        ("00-XYZ-1-01", None),
    ],
)
def test_trace_id_comes_from_a_valid_traceparent(
    header: str, expected: str | None
) -> None:
    assert trace_id({"traceparent": header}) == expected


FAILING_APP = """
import postroom

app = postroom.App()


@app.handler("jobs")
def handle(body: dict) -> None:
    raise postroom.Reject("no such image: " + body["image"])
"""


def test_worker_log_format_json_writes_json_lines(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING_APP)
    url = f"sqlite:///{tmp_path}/x.db"
    with postroom.connect(url) as client:
        mid = client.send("jobs", {"image": "cat.png"})
        proc = subprocess.Popen(
            [POSTROOM, "worker", "failing:app", "--url", url, "--log-format", "json"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(tmp_path)},
            stderr=subprocess.PIPE,
        )
        try:
            wait_until(lambda: client.stats("jobs").dead == 1, timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    docs = [json.loads(line) for line in err.decode().splitlines()]
    [line] = [d for d in docs if d.get("event") == "rejected"]
    assert line["id"] == mid and line["queue"] == "jobs"
    assert line["error"] == "Reject: no such image: cat.png"
    assert line["message"].startswith("message rejected queue=jobs")
