"""The charts of rates and depths over time, in a real headless Chromium: drawn
from the samples the backend keeps, so they are still there after ``serve``
restarts, and fed by every process (``serve`` samples on its own)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import postroom
from postroom.model.message import from_ms, now_ms
from postroom.model.samples import STEP_MS, bucket_of
from postroom.testing.workers import wait_until

from .conftest import ADMIN, OPS, Server, start_server, stop_server


def _work(client: postroom.Client, step: int) -> None:
    """A load that rises and falls: sends, then receives with some acked, some
    retried and some rejected (dead-lettered)."""
    load = 6 + round(5 * math.sin(step / 8))
    client.send_many("images.resize", [{"n": n} for n in range(load)])
    client.send_many("mail.send", [{"n": n} for n in range(load // 2 + 1)])
    got = client.receive(
        "images.resize", max_messages=max(1, load + round(3 * math.cos(step / 5)))
    )
    for i, delivery in enumerate(got):
        if i % 7 == 3:
            client.retry(delivery, delay=0)
        elif i % 11 == 5:
            client.reject(delivery, error="cannot identify image file")
        else:
            client.ack(delivery)
    for delivery in client.receive("mail.send", max_messages=load // 2 + 1):
        client.ack(delivery)


@pytest.mark.slow
def test_charts_of_rates_and_depths_survive_a_restart(
    tmp_path: Path, page: Page, shots: Path
) -> None:
    server = start_server(tmp_path)
    try:
        base = bucket_of(now_ms()) - 40 * 60_000
        with postroom.connect(server.url) as client:
            # serve takes the current bucket's sample on its own at start.
            wait_until(
                lambda: any(s.at_ms > now_ms() - 2 * STEP_MS for s in client.samples())
            )
            client.declare_queue("images.resize", max_attempts=3)
            client.declare_queue("mail.send")
            assert client.take_sample(from_ms(base))
            client.send_many("images.resize", [{"n": n} for n in range(5)])
            assert client.take_sample(from_ms(base + STEP_MS))
            for step in range(2, 80):
                _work(client, step)
                assert client.take_sample(from_ms(base + step * STEP_MS))
    finally:
        stop_server(server)

    server = start_server(tmp_path)  # the same database: the samples are kept
    try:
        page.goto(server.base + "/")
        rates = page.locator('figure[data-chart="rates"] rect.hover title')
        # 5 sent in 10 s between the first two samples, on one queue.
        expect(rates.nth(1)).to_have_text(re.compile(r"· sent 0\.5/s · acked 0/s"))
        # Then 7 + 4 sent; of the 10 + 4 received: 12 acked, 1 retried, 1 rejected.
        expect(rates.nth(2)).to_have_text(
            re.compile(
                r"· sent 1\.1/s · acked 1\.2/s · retried 0\.1/s · dead-lettered 0\.1/s$"
            )
        )
        ready = page.locator('figure[data-chart="ready"] rect.hover title')
        expect(ready.nth(1)).to_have_text(re.compile(r"· ready 5$"))
        expect(ready.nth(2)).to_have_text(re.compile(r"· ready 3$"))  # 3 + 0
        page.screenshot(path=str(shots / "dashboard-charts.png"), full_page=True)

        page.get_by_role("link", name="mail.send").first.click()
        expect(page.locator("h1")).to_have_text("mail.send")
        ready = page.locator('figure[data-chart="ready"] rect.hover title')
        expect(ready.nth(1)).to_have_text(re.compile(r"· ready 0$"))  # its own only
        own = page.locator('figure[data-chart="rates"] rect.hover title').nth(2)
        expect(own).to_have_text(
            re.compile(r"· sent 0\.4/s · acked 0\.4/s · retried 0/s")
        )
        page.screenshot(path=str(shots / "dashboard-queue-charts.png"), full_page=True)
        assert page.request.get(server.base + "/ui/charts?queue=mail.send").ok
    finally:
        stop_server(server)


def test_charts_show_only_the_queues_the_token_covers(secured: Server) -> None:
    base = bucket_of(now_ms()) - 20 * 60_000
    with postroom.connect(secured.url) as client:
        client.declare_queue("orders.paid")
        client.declare_queue("payroll")
        assert client.take_sample(from_ms(base))
        client.send_many("orders.paid", [{"n": n} for n in range(5)])
        client.send_many("payroll", [{"n": n} for n in range(100)])
        assert client.take_sample(from_ms(base + STEP_MS))
    with secured.client(OPS) as ops:  # an admin token of orders.* only
        assert ops.get("/ui/charts", params={"queue": "payroll"}).status_code == 403
        overview = ops.get("/ui/charts").text
        assert "sent 0.5/s" in overview and "sent 10.5/s" not in overview
        own = ops.get("/ui/charts", params={"queue": "orders.paid"})
        assert own.status_code == 200 and "sent 0.5/s" in own.text
    with secured.client(ADMIN) as admin:  # every queue
        assert "sent 10.5/s" in admin.get("/ui/charts").text
