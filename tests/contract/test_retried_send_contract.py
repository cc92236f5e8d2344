"""A send retried with the same message ids (its first try may have committed
before the connection broke) stores each message once, on every backend.

On Redis a single send is a MULTI/EXEC of plain commands; after a broken
connection it goes again only through the enqueue script, which skips live ids
(tests/integration/test_redis_lost_replies.py drops that reply for real). Here the
batches go through the path every backend's retry takes.
"""

from __future__ import annotations

import anyio

import postroom


async def _messages(client: postroom.AsyncClient, n: int) -> list[postroom.Message]:
    return [(await client.prepare_send("q", {"n": i})).message for i in range(n)]


async def _twice(url: str) -> None:
    async with postroom.AsyncClient(url) as client:
        backend = client.backend
        first = await _messages(client, 2)
        ids = [m.id for m in first]
        assert await backend.enqueue("q", first, dedup_window_ms=0) == ids
        assert await backend.enqueue("q", first, dedup_window_ms=0) == ids
        st = await client.stats("q")
        assert (st.ready, st.in_flight) == (2, 0)
        got = await client.receive("q", max_messages=2)
        assert sorted(d.id for d in got) == sorted(ids)
        # Stored again while leased: still leased once, not visible a second time.
        assert await backend.enqueue("q", first, dedup_window_ms=0) == ids
        st = await client.stats("q")
        assert (st.ready, st.delayed, st.in_flight) == (0, 0, 2)
        assert await client.receive("q") == []
        await client.ack_many(got)
        # One message sent again while still queued: once.
        [one] = await _messages(client, 1)
        for _ in range(2):
            assert await backend.enqueue("q", [one], dedup_window_ms=0) == [one.id]
        assert [m.id for m in await client.peek("q", 10)] == [one.id]


def test_enqueue_of_a_stored_id_stores_it_once(url: str) -> None:
    anyio.run(_twice, url)
