"""Redis: a command whose reply was lost (the connection broke after Redis ran
it) is sent again safely: an ack is recognised as done, not reported as a lost
lease; a send stores its message once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

import postroom
from tests.conftest import require_service


class ReplyDropper:
    """A loopback TCP proxy to Redis that, once armed, forwards the next request
    but drops its reply and closes that client connection (as a server restart
    right after running a command would)."""

    def __init__(self) -> None:
        self.armed = False
        self.dropped = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", 6379)

        async def upstream() -> None:
            while data := await client_r.read(65536):
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if self.armed:
                    self.armed = False
                    self.dropped += 1
                    client_w.close()  # the reply never arrives
                    return
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_w, server_w):
            with contextlib.suppress(Exception):
                writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ReplyDropper]:
    require_service("redis", "127.0.0.1", 6379)
    dropper = ReplyDropper()
    await dropper.start()
    yield dropper
    await dropper.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_ack_retried_after_lost_reply_is_not_a_lost_lease(
    proxy: ReplyDropper,
) -> None:
    prefix = "t" + uuid.uuid4().hex[:12]
    url = f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}"
    async with postroom.AsyncClient(url) as client:
        try:
            await client.send("jobs", {"n": 1})
            [d] = await client.receive("jobs")
            proxy.armed = True
            await client.ack(d)  # ran, reply lost, sent again: no LeaseLost
            assert proxy.dropped == 1
            st = await client.stats("jobs")
            assert (st.ready, st.in_flight, st.dead) == (0, 0, 0)
            # A lease that was really lost is still reported after a lost reply.
            await client.send("jobs", {"n": 2})
            [first] = await client.receive("jobs", visibility_timeout=0.05)
            await asyncio.sleep(0.2)
            [second] = await client.receive("jobs")
            proxy.armed = True
            with pytest.raises(postroom.LeaseLost):
                await client.ack(first)
            assert proxy.dropped == 2
            await client.ack(second)
        finally:
            await client.purge("jobs")
            await client.delete_queue("jobs")


@pytest.mark.anyio
async def test_send_retried_after_lost_reply_stores_once(proxy: ReplyDropper) -> None:
    prefix = "t" + uuid.uuid4().hex[:12]
    url = f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}"
    async with postroom.AsyncClient(url) as client:
        try:
            await client.declare_queue("jobs")
            proxy.armed = True
            mid = await client.send("jobs", {"n": 1})  # ran, reply lost, sent again
            assert proxy.dropped == 1
            assert [m.id for m in await client.peek("jobs")] == [mid]
            assert (await client.counters(["jobs"]))["jobs"]["sent"] == 1
        finally:
            await client.delete_queue("jobs")


@pytest.mark.anyio
async def test_sync_send_retried_after_lost_reply_stores_once(
    proxy: ReplyDropper,
) -> None:
    """The sync client's send (plain commands from the calling thread) whose
    reply was lost goes again through the script, which skips the live id."""
    import anyio.to_thread

    prefix = "t" + uuid.uuid4().hex[:12]
    url = f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}"

    def sends() -> tuple[str, str, list[str], int]:
        with postroom.connect(url) as client:
            try:
                client.declare_queue("jobs")
                first = client.send("jobs", {"n": 0})  # opens the direct connection
                proxy.armed = True
                mid = client.send("jobs", {"n": 1})  # ran, reply lost, sent again
                ids = [m.id for m in client.peek("jobs")]
                return first, mid, ids, client.counters(["jobs"])["jobs"]["sent"]
            finally:
                client.delete_queue("jobs")

    first, mid, ids, sent = await anyio.to_thread.run_sync(sends)
    assert proxy.dropped == 1
    assert ids == [first, mid]
    assert sent == 2
