"""The dashboard in a real headless Chromium (Debian's package, driven by
Playwright): it loads, shows depths, a dead letter's traceback, and redrives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

import postroom
from postroom.model.workers import WorkerInfo

from .conftest import ADMIN, Server

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "resize.py", line 12, in resize\n'
    "    image = Image.open(path)\n"
    "PIL.UnidentifiedImageError: cannot identify image file 'corrupt.png'"
)


def _seed(http: httpx.Client, queue: str) -> str:
    """Three waiting messages and one dead letter with a traceback; its id."""
    for i in range(3):
        http.post(f"/v1/queues/{queue}/messages", json={"body": {"n": i}})
    http.post(f"/v1/queues/{queue}/messages", json={"body": {"image": "corrupt.png"}})
    got = http.post(f"/v1/queues/{queue}/receive", json={"max_messages": 4}).json()
    [bad] = [m for m in got["messages"] if m["body"].get("image")]
    for m in got["messages"]:
        if m is not bad:
            http.post(
                f"/v1/queues/{queue}/retry", json={"receipt": m["receipt"], "delay": 0}
            )
    error: dict[str, Any] = {
        "type": "UnidentifiedImageError",
        "message": "cannot identify image file 'corrupt.png'",
        "traceback": TRACEBACK,
    }
    http.post(
        f"/v1/queues/{queue}/reject", json={"receipt": bad["receipt"], "error": error}
    )
    return str(bad["id"])


@pytest.mark.slow
def test_dashboard_depths_traceback_and_redrive(
    server: Server, http: httpx.Client, page: Page, shots: Path
) -> None:
    queue = "images.resize"
    http.post("/v1/topics/images.resized/subscriptions", json={"name": "gallery"})
    dead_id = _seed(http, queue)

    page.goto(server.base + "/")
    row = page.locator(f'tr[data-queue="{queue}"]')
    expect(row.locator('[data-field="ready"]')).to_have_text("3")
    expect(row.locator('[data-field="dead"]')).to_have_text("1")
    expect(page.locator("#updated")).to_contain_text("updated")  # live poll ran
    http.post(f"/v1/queues/{queue}/messages", json={"body": {"n": 3}})
    expect(row.locator('[data-field="ready"]')).to_have_text("4")  # live update
    page.screenshot(path=str(shots / "dashboard-queues.png"), full_page=True)

    row.get_by_role("link", name=queue).click()
    expect(page.locator("#depth-dead")).to_have_text("1")
    page.get_by_role("link", name=dead_id).click()
    expect(page.locator("#traceback")).to_contain_text("UnidentifiedImageError")
    expect(page.locator("#history")).to_contain_text("rejected")
    page.screenshot(path=str(shots / "dashboard-dead-letter.png"), full_page=True)

    page.locator("#redrive-one").click()
    expect(page.locator(".notice")).to_have_text("redrove 1 message(s)")
    expect(page.locator("#depth-dead")).to_have_text("0")
    expect(page.locator("#depth-ready")).to_have_text("5")
    page.screenshot(path=str(shots / "dashboard-queue.png"), full_page=True)
    stats = http.get(f"/v1/queues/{queue}").json()
    assert (stats["dead"], stats["ready"], stats["counters"]["redriven"]) == (0, 5, 1)


@pytest.mark.slow
def test_dashboard_filters_and_purge(
    server: Server, http: httpx.Client, page: Page
) -> None:
    queue = "emails.send"
    _seed(http, queue)
    page.goto(f"{server.base}/ui/queues/{queue}")
    page.select_option("select[name=reason]", "lease_expired")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("main")).to_contain_text("No dead letters match the filter")
    page.select_option("select[name=reason]", "rejected")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#dead-letters tbody tr")).to_have_count(1)
    page.locator("#redrive-selected").click()  # none selected: nothing moves
    expect(page.locator(".notice")).to_have_text("select the dead letters to redrive")
    page.locator("#purge-dead").click()
    expect(page.locator(".notice")).to_have_text("purged 1 dead letter(s)")
    assert http.get(f"/v1/queues/{queue}").json()["dead"] == 0


@pytest.mark.slow
def test_dashboard_sign_in_with_admin_token(
    secured: Server, page: Page, shots: Path
) -> None:
    page.goto(secured.base + "/")
    expect(page).to_have_url(secured.base + "/ui/login")
    page.fill("input[name=token]", "not-the-right-token-at-all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[role=alert]")).to_contain_text("not a valid admin token")
    page.screenshot(path=str(shots / "dashboard-login.png"), full_page=True)
    page.fill("input[name=token]", ADMIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(secured.base + "/")
    expect(page.locator("h1")).to_have_text("Queues")


@pytest.mark.slow
def test_dashboard_workers_page(server: Server, page: Page, shots: Path) -> None:
    started = datetime(2026, 12, 4, 21, 0, 0, 125000, tzinfo=UTC)
    info = WorkerInfo(
        "host-w:4242:ab12cd", "host-w", 4242, ("images.resize", "mail.send"), 8,
        3, 1520, 7, started, datetime.now(UTC), 10.0,
    )  # fmt: skip
    with postroom.connect(server.url) as client:
        client.declare_queue("mail.send")
        client.put_worker(info)
    page.goto(server.base + "/")
    page.get_by_role("link", name="Workers").click()
    row = page.locator('tr[data-worker="host-w:4242:ab12cd"]')
    expect(row).to_contain_text("host-w")
    expect(row).to_contain_text("1520")
    expect(row).to_contain_text("2026-12-04 21:00:00.125Z")  # one format, with ms
    page.screenshot(path=str(shots / "dashboard-workers.png"), full_page=True)
    row.get_by_role("link", name="mail.send").click()
    expect(page.locator("h1")).to_contain_text("mail.send")


@pytest.mark.slow
def test_dashboard_send_publish_and_subscriptions(
    server: Server, http: httpx.Client, page: Page, shots: Path
) -> None:
    topic = "orders.placed"
    http.post(f"/v1/topics/{topic}/subscriptions", json={"name": "billing"})
    page.goto(server.base + "/")
    page.get_by_role("link", name=topic, exact=True).first.click()
    expect(page.locator("h1")).to_have_text(f"Topic {topic}")

    page.fill("#create-form input[name=name]", "audit")
    page.locator("#create").click()
    expect(page.locator(".notice")).to_contain_text(f"subscription audit of {topic}")
    expect(page.locator('tr[data-subscription="audit"]')).to_be_visible()

    page.fill("#publish-form textarea", '{"order": 7}')
    page.locator("#publish").click()
    expect(page.locator(".notice")).to_contain_text("published event")
    page.fill("#publish-form textarea", "{not json")
    page.locator("#publish").click()
    expect(page.locator(".notice.bad")).to_contain_text("not valid JSON")
    page.screenshot(path=str(shots / "dashboard-topic.png"), full_page=True)
    for name in ("audit", "billing"):
        stats = http.get(f"/v1/queues/{topic}:{name}").json()
        assert stats["ready"] == 1, stats  # one event each; the bad one sent none

    page.locator('tr[data-subscription="audit"] button').click()  # confirmed
    expect(page.locator(".notice")).to_have_text("deleted subscription audit")
    assert [s["name"] for s in http.get("/v1/subscriptions").json()["subscriptions"]
            if s["topic"] == topic] == ["billing"]  # fmt: skip

    page.locator('tr[data-subscription="billing"]').get_by_role("link").click()
    page.fill("#send-form textarea", '{"by": "hand"}')
    page.locator("#send").click()
    expect(page.locator(".notice")).to_contain_text("sent message")
    expect(page.locator("#depth-ready")).to_have_text("2")


@pytest.mark.slow
def test_dashboard_folds_library_frames_of_a_traceback(
    server: Server, http: httpx.Client, page: Page
) -> None:
    import anyio

    queue = "folded.tb"
    library = Path(anyio.__file__).parent / "to_thread.py"
    traceback = (
        "Traceback (most recent call last):\n"
        f'  File "{library}", line 65, in run_sync\n'
        "    return await get_async_backend().run_sync_in_worker_thread(\n"
        '  File "/srv/app/tasks.py", line 12, in resize\n'
        "    image = Image.open(path)\n"
        "ValueError: cannot identify image file"
    )
    http.post(f"/v1/queues/{queue}/messages", json={"body": {"n": 1}})
    [m] = http.post(f"/v1/queues/{queue}/receive", json={}).json()["messages"]
    error = {"type": "ValueError", "message": "bad", "traceback": traceback}
    http.post(
        f"/v1/queues/{queue}/reject", json={"receipt": m["receipt"], "error": error}
    )
    page.goto(f"{server.base}/ui/queues/{queue}/dead/{m['id']}")
    folded = page.locator("#traceback details.folded")
    expect(folded.locator("summary")).to_have_text("1 postroom/anyio frame")
    expect(folded.locator("pre")).not_to_be_visible()  # folded until opened
    expect(page.locator("#traceback")).to_contain_text("/srv/app/tasks.py")
    stamp = page.locator("dl.facts dd").nth(3).inner_text()
    assert stamp.endswith("Z") and stamp[-5] != ":" and stamp[-8] == ":", stamp
