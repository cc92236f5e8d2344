"""A wait longer than redis-py's socket timeout (5 s) is not cut short."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

import postroom
from tests.conftest import require_service


@pytest.fixture
def url() -> Iterator[str]:
    require_service("redis", "127.0.0.1", 6379)
    prefix = "t" + uuid.uuid4().hex[:12]
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379, db=0)
    keys = list(r.scan_iter(f"*{prefix}*"))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.mark.slow
def test_redis_long_poll_beyond_socket_timeout_gets_the_message(url: str) -> None:
    with postroom.connect(url) as client:
        client.declare_queue("q")

        def later() -> None:
            time.sleep(6.5)
            with postroom.connect(url) as other:
                other.send("q", "late")

        t = threading.Thread(target=later)
        t.start()
        got = client.receive("q", wait=9.0)
        t.join()
        assert [d.message.text for d in got] == ['"late"']
