"""``postroom schedules``: the periodic jobs' next ticks, read from the backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import postroom
from postroom.testing.workers import running, wait_until
from tests.cli.test_queue_commands import ok


def test_schedules_lists_the_next_tick(url: str, client: postroom.Client) -> None:
    assert "no periodic jobs" in ok(["schedules", "--url", url])
    app = postroom.App(url)

    @app.periodic("hourly", every=3600)
    def hourly() -> None: ...

    with running(app, url):
        wait_until(lambda: client.stats("postroom.periodic.hourly").delayed == 1)
    client.send("unrelated", {"n": 1})
    [doc] = json.loads(ok(["schedules", "--url", url, "--json"]))
    now = datetime.now(UTC)
    expected = datetime.fromtimestamp((now.timestamp() // 3600 + 1) * 3600, UTC)
    assert doc["name"] == "hourly" and doc["queue"] == "postroom.periodic.hourly"
    assert datetime.fromisoformat(doc["next"]) == expected
    assert (doc["in_flight"], doc["dead"]) == (0, 0)
    table = ok(["schedules", "--url", url])
    assert "hourly" in table and "unrelated" not in table
