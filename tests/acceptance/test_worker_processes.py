"""Real ``postroom worker`` processes: SIGKILL, crash loops, SIGTERM, bad targets.

SPEC §2.5 (a lease that expires is redelivered), §2.6 (a message that kills its
worker every time ends as a dead letter), §2.13 (graceful shutdown releases work
without counting an attempt).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

import postroom
from postroom.runtime.egress import ALLOW_ENV
from tests.acceptance.conftest import POSTROOM, Workers, wait_until
from tests.push.conftest import Receiver, receiver, serve_receiver

__all__ = ["receiver"]

pytestmark = pytest.mark.slow

LEASE = 1.0  # short, so that leases of killed workers expire quickly
NO_BACKOFF = postroom.Backoff(initial=0.0, jitter=False)


def declare(client: postroom.Client, max_attempts: int = 5) -> None:
    client.declare_queue(
        "jobs",
        visibility_timeout=LEASE,
        max_attempts=max_attempts,
        backoff=NO_BACKOFF,
    )


def test_worker_killed_mid_handler_loses_nothing(
    workers: Workers, durable_client: postroom.Client
) -> None:
    declare(durable_client)
    mid = durable_client.send("jobs", {"action": "hang_first"})
    first = workers.start()
    wait_until(lambda: workers.started(mid, 1))
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    assert not workers.done(mid)

    workers.start()
    wait_until(lambda: workers.done(mid))
    wait_until(lambda: durable_client.stats("jobs").in_flight == 0)
    st = durable_client.stats("jobs")
    assert (st.ready, st.delayed, st.dead) == (0, 0, 0)
    assert (workers.marks / f"{mid}.done").read_text() == "2"


def test_message_that_kills_its_worker_ends_as_lease_expired_dead_letter(
    workers: Workers, durable_client: postroom.Client
) -> None:
    declare(durable_client, max_attempts=3)
    mid = durable_client.send("jobs", {"action": "die"})

    def dead() -> bool:
        return durable_client.stats("jobs").dead == 1

    for _ in range(8):  # restart workers as a supervisor would
        proc = workers.start()
        wait_until(lambda p=proc: p.poll() is not None or dead())  # type: ignore[misc]
        if dead():
            break
        assert proc.returncode == -signal.SIGKILL, workers.log(proc)
    assert dead()
    [letter] = durable_client.dead_letters("jobs")
    assert (letter.id, letter.reason, letter.attempts) == (mid, "lease_expired", 3)
    assert [h.outcome for h in letter.history] == ["lease_expired"] * 3
    assert all(workers.started(mid, n) for n in (1, 2, 3))
    assert not workers.started(mid, 4)


def test_sigterm_releases_unfinished_work_without_counting_an_attempt(
    workers: Workers, durable_client: postroom.Client
) -> None:
    declare(durable_client)
    mid = durable_client.send("jobs", {"action": "hang"})
    proc = workers.start("--grace", "0.5")
    wait_until(lambda: workers.started(mid, 1))
    assert durable_client.peek("jobs")[0].attempts == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, workers.log(proc)
    log = workers.log(proc)
    assert "released 1 unfinished message" in log
    assert "Traceback" not in log
    st = durable_client.stats("jobs")
    assert (st.ready, st.in_flight, st.dead) == (1, 0, 0)
    [msg] = durable_client.peek("jobs")
    assert (msg.id, msg.attempts) == (mid, 0)


def test_sigterm_lets_a_running_handler_finish_within_grace(
    workers: Workers, durable_client: postroom.Client
) -> None:
    declare(durable_client)
    ids = durable_client.send_many("jobs", [{"action": "quick"} for _ in range(5)])
    proc = workers.start("--grace", "10")
    wait_until(lambda: all(workers.done(i) for i in ids))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, workers.log(proc)
    st = durable_client.stats("jobs")
    assert (st.ready, st.in_flight, st.dead) == (0, 0, 0)


def test_worker_processes_share_work_and_stop_on_sigterm(
    workers: Workers, durable_client: postroom.Client
) -> None:
    declare(durable_client)
    ids = durable_client.send_many("jobs", [{"action": "quick"} for _ in range(20)])
    parent = workers.start("--processes", "2", "--grace", "5")
    wait_until(lambda: all(workers.done(i) for i in ids))
    wait_until(lambda: workers.log(parent).count("started on") == 2)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(20) == 0, workers.log(parent)
    log = workers.log(parent)
    assert log.count("worker stopped") == 2, log
    st = durable_client.stats("jobs")
    assert (st.ready, st.in_flight, st.dead) == (0, 0, 0)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_worker_processes_stop_when_their_parent_is_killed(
    workers: Workers, durable_client: postroom.Client
) -> None:
    declare(durable_client)
    parent = workers.start("--processes", "2", "--grace", "1")
    wait_until(lambda: len(_children(parent.pid)) == 2)
    children = _children(parent.pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    wait_until(lambda: not any(_alive(pid) for pid in children))
    assert "parent process" in workers.log(parent)


def test_worker_process_killed_by_a_signal_is_started_again(
    workers: Workers, durable_client: postroom.Client
) -> None:
    declare(durable_client)
    parent = workers.start("--processes", "2", "--grace", "1")
    wait_until(lambda: workers.log(parent).count("started on") == 2)
    victim = _children(parent.pid)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: workers.log(parent).count("started on") == 3)
    assert victim not in _children(parent.pid)
    assert len(_children(parent.pid)) == 2
    mid = durable_client.send("jobs", {"action": "quick"})
    wait_until(lambda: workers.done(mid))
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(20) == 0, workers.log(parent)
    assert "starting another" in workers.log(parent)


def test_worker_push_option_delivers_push_subscriptions(
    workers: Workers, durable_client: postroom.Client, receiver: Receiver
) -> None:
    sub = durable_client.create_subscription(
        "images.resized", "webhook", push_endpoint=receiver.endpoint()
    )
    event_id = durable_client.publish("images.resized", {"image": "cat.png"})
    proc = workers.start("--push", "--grace", "5")
    wait_until(lambda: receiver.count() == 1)
    [request] = receiver.got()
    assert request.headers["ce-id"] == event_id
    assert request.body == b'{"image":"cat.png"}'
    wait_until(lambda: durable_client.stats(sub.queue).in_flight == 0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0, workers.log(proc)
    assert "delivering push subscriptions" in workers.log(proc)
    st = durable_client.stats(sub.queue)
    assert (st.ready, st.in_flight, st.dead) == (0, 0, 0)


def test_worker_push_allow_reaches_every_worker_process(
    workers: Workers,
    durable_client: postroom.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)  # only the option allows it
    with serve_receiver() as rx:
        sub = durable_client.create_subscription(
            "images.resized", "webhook", push_endpoint=rx.endpoint()
        )
        ids = [durable_client.publish("images.resized", {"n": n}) for n in range(4)]
        proc = workers.start(
            "--processes", "2", "--push", "--push-allow", "127.0.0.1", "--grace", "5"
        )
        wait_until(lambda: rx.count() >= 4)
        assert {r.headers["ce-id"] for r in rx.got()} == set(ids)
        wait_until(lambda: durable_client.stats(sub.queue).in_flight == 0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, workers.log(proc)
    st = durable_client.stats(sub.queue)
    assert (st.ready, st.in_flight, st.dead) == (0, 0, 0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no_such_module:app"], "cannot import module 'no_such_module'"),
        (["tasks:nope"], "module 'tasks' has no attribute 'nope'"),
        (["broken:app"], "needs 'not_installed_anywhere', which is not installed"),
        (["tasks:app"], "the app has no handlers"),
        (["good:app", "--queues", "other"], "no handler for 'other'"),
        (["good:app", "--url", "bogus://x"], "unknown URL scheme 'bogus'"),
        (
            ["good:app", "--processes", "2", "--url", "sqlite:////no/such/dir/x.db"],
            "cannot open /no/such/dir/x.db",
        ),
    ],
)
def test_worker_with_a_bad_target_exits_1_with_a_clear_message(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "tasks.py").write_text("import postroom\napp = postroom.App()\n")
    (tmp_path / "broken.py").write_text("import not_installed_anywhere\n")
    (tmp_path / "good.py").write_text(
        "import postroom\napp = postroom.App('memory://')\n"
        "@app.handler('jobs')\nasync def handle(body: bytes) -> None: ...\n"
    )
    done = subprocess.run(
        [POSTROOM, "worker", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    err = " ".join(done.stderr.split())  # undo the console's line wrapping
    assert expected in err
    assert "Traceback" not in done.stderr
