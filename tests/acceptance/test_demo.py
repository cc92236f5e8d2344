"""``postroom demo`` as a user runs it, checked against the backend's own counts."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

import postroom

pytestmark = pytest.mark.slow

POSTROOM = str(Path(sys.executable).with_name("postroom"))
QUEUE = "images.resize"


async def _backend_counts(url: str) -> dict[str, Any]:
    async with postroom.connect_async(url) as client:
        stats = await client.stats(QUEUE)
        events = await client.stats("images.resized:gallery")
        hooks = await client.stats("images.resized:webhook")
        counters = await client.backend.counters([QUEUE])
        letters = await client.dead_letters(QUEUE, limit=1000)
    return {
        "stats": stats,
        "events": events,
        "hooks": hooks,
        "counters": counters[QUEUE],
        "letters": letters,
    }


def _gallery(folder: Path) -> dict[str, bool]:
    with closing(sqlite3.connect(folder / "gallery.db")) as conn:
        rows = conn.execute("SELECT image, watermark FROM gallery").fetchall()
    return {image: bool(watermark) for image, watermark in rows}


def _notified(folder: Path) -> set[str]:
    with closing(sqlite3.connect(folder / "gallery.db")) as conn:
        rows = conn.execute("SELECT image FROM notifications").fetchall()
    return {image for (image,) in rows}


def _uploads(folder: Path) -> list[dict[str, Any]]:
    records = sorted((folder / "uploads").glob("*.json"))
    return [json.loads(path.read_text()) for path in records]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    folder = tmp_path_factory.mktemp("demo") / "run"
    argv = [POSTROOM, "demo", "--images", "20", "--workers", "2", "--json"]
    proc = subprocess.run(
        [*argv, "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), folder


def test_demo_accounts_for_every_upload(run: tuple[dict[str, Any], Path]) -> None:
    summary, folder = run
    uploads = _uploads(folder)
    gallery = _gallery(folder)
    counts = anyio.run(_backend_counts, summary["url"])
    dead_ids = {d.id for d in counts["letters"]}
    assert len(uploads) == summary["uploaded"] == 20
    lost = [
        u
        for u in uploads
        if u["image"] not in gallery and u["message_id"] not in dead_ids
    ]
    assert lost == []
    st = counts["stats"]
    assert (st.ready, st.delayed, st.in_flight) == (0, 0, 0)
    jobs = summary["uploaded"] + summary["malformed_jobs"]
    assert summary["processed"] + st.dead == jobs
    assert len(gallery) == summary["gallery"] == summary["processed"]


def test_demo_delivers_every_event_to_both_subscriptions(
    run: tuple[dict[str, Any], Path],
) -> None:
    summary, folder = run
    counts = anyio.run(_backend_counts, summary["url"])
    for queue in (counts["events"], counts["hooks"]):
        assert (queue.ready, queue.delayed, queue.in_flight, queue.dead) == (0, 0, 0, 0)
    # The same events reached the in-process subscriber and the signed webhook.
    assert _notified(folder) == set(_gallery(folder))
    assert summary["webhooks"] == summary["processed"]


def test_demo_summary_matches_the_backend_counters(
    run: tuple[dict[str, Any], Path],
) -> None:
    summary, _ = run
    counts = anyio.run(_backend_counts, summary["url"])
    counters = counts["counters"]
    assert counters["acked"] == summary["processed"]
    assert counters["retried"] == summary["retried"]
    assert counters["redriven"] == summary["redriven"]
    assert counters["dead_lettered"] == sum(summary["dead_lettered"].values())
    at_end = Counter(d.reason for d in counts["letters"])
    assert at_end == summary["dead_at_end"] == {"rejected": 1, "undecodable": 1}
    # 1 in 10 uploads needs the watermark: 3 attempts, then a dead letter.
    assert summary["dead_lettered"]["failed"] == summary["uploads"]["watermark"] == 2
    assert summary["retried"] == 2 * summary["uploads"]["watermark"]


def test_demo_processes_the_redriven_jobs(run: tuple[dict[str, Any], Path]) -> None:
    summary, folder = run
    gallery = _gallery(folder)
    marked = [u for u in _uploads(folder) if u["watermark"]]
    assert summary["redriven"] == summary["redriven_processed"] == len(marked) == 2
    for upload in marked:
        assert gallery[upload["image"]] is True
        thumbs = sorted((folder / "thumbnails" / upload["image"]).iterdir())
        assert [p.name for p in thumbs] == ["128.jpg", "256.jpg", "64.jpg"]


def test_demo_stops_every_process_it_started(
    run: tuple[dict[str, Any], Path],
) -> None:
    summary, _ = run
    names = sorted(p["name"] for p in summary["processes"])
    assert names == ["gallery", "service", "worker-1", "worker-2"]
    # uvicorn re-raises the SIGTERM it handled; SIGKILL would mean a forced stop.
    assert {p["exit_code"] for p in summary["processes"]} <= {0, -signal.SIGTERM}
