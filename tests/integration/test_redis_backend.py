"""Redis specifics: eviction warning, URLs, script reloads, errors, fan-out."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

import postroom
from postroom.backends.redis import RedisBackend
from postroom.backends.redis._keys import parse_url
from postroom.model.message import from_ms, now_ms
from tests.conftest import require_service
from tests.integration.test_redis_restart import RedisServer, _free_port

pytestmark = pytest.mark.anyio

WARNING_LOGGER = "postroom.backends.redis._base"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own that evicts keys when memory runs out."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    srv = RedisServer(tmp_path, _free_port(), "--maxmemory-policy", "allkeys-lru")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def client() -> AsyncIterator[postroom.AsyncClient]:
    require_service("redis", "127.0.0.1", 6379)
    prefix = "rb" + uuid.uuid4().hex[:10]
    async with postroom.connect_async(f"redis://127.0.0.1:6379/0?prefix={prefix}") as c:
        yield c
        r = c.backend.redis  # type: ignore[attr-defined]
        keys = [k async for k in r.scan_iter(match=f"{{{prefix}[:}}]*")]
        if keys:
            await r.delete(*keys)


def test_redis_url_prefix_and_schemes() -> None:
    assert parse_url("redis://h:1/2") == ("redis://h:1/2", "postroom")
    assert parse_url("valkey://h:1/0?prefix=app&socket_timeout=5") == (
        "redis://h:1/0?socket_timeout=5",
        "app",
    )
    assert parse_url("valkeys://h/0")[0] == "rediss://h/0"
    with pytest.raises(postroom.ConfigurationError, match="prefix"):
        parse_url("redis://h/0?prefix=a{b}")


async def test_redis_warns_when_keys_can_be_evicted(
    private_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=WARNING_LOGGER)
    async with postroom.connect_async(f"redis://127.0.0.1:{private_server.port}/0"):
        pass
    [record] = [r for r in caplog.records if r.name == WARNING_LOGGER]
    assert "allkeys-lru" in record.getMessage()
    assert "noeviction" in record.getMessage()


async def test_redis_does_not_warn_with_noeviction(
    client: postroom.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=WARNING_LOGGER)
    async with postroom.connect_async(client.url):
        pass
    assert [r for r in caplog.records if r.name == WARNING_LOGGER] == []


async def test_redis_unreachable_is_a_backend_error() -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    with pytest.raises(postroom.BackendError, match=r"127\.0\.0\.1") as info:
        async with postroom.connect_async(url) as c:
            await c.send("q", 1)
    assert info.value.__cause__ is not None


async def test_redis_scripts_are_loaded_again_after_a_flush(
    client: postroom.AsyncClient,
) -> None:
    r = client.backend.redis  # type: ignore[attr-defined]
    await client.declare_queue("q")
    await r.script_flush()
    await client.send_many("q", list(range(1500)))  # two script calls, pipelined
    await r.script_flush()
    got = await client.receive("q", max_messages=2000)
    assert len(got) == 1000  # one claim hands out at most 1,000
    await r.script_flush()
    assert await client.ack_many(got) == []
    await client.purge("q")
    await client.send("q", "later", delay=0.6)
    # A consumer waiting until the message is due, with the claim queued behind
    # its BLPOP: the claim finds no script and the consumer claims again.
    woken: list[postroom.Delivery] = []

    async def consume() -> None:
        woken.extend(await client.receive("q", wait=5.0))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(0.3)
        await r.script_flush()
    assert [d.message.text for d in woken] == ['"later"']


async def test_redis_enqueue_and_claim_on_unknown_queue_raise(
    client: postroom.AsyncClient,
) -> None:
    backend = client.backend
    await client.connect()
    msg = postroom.Message(
        id="01TEST",
        queue="never",
        body=b"x",
        headers={},
        enqueued_at=from_ms(now_ms()),
        available_at=from_ms(now_ms()),
    )
    with pytest.raises(postroom.QueueNotFound, match="never"):
        await backend.enqueue("never", [msg], dedup_window_ms=0)
    assert isinstance(backend, RedisBackend)
    r = backend.redis  # the single-send transaction took its writes back
    assert await r.hlen(backend.key("never", "msg")) == 0
    assert await r.zcard(backend.key("never", "queued")) == 0
    assert await r.zcard(backend.key("never", "live")) == 0
    with pytest.raises(postroom.QueueNotFound, match="never"):
        await backend.claim("never", 1, 1000, "me")


async def test_redis_publish_skips_a_subscription_deleted_meanwhile(
    client: postroom.AsyncClient,
) -> None:
    await client.create_subscription("t", "a")
    await client.create_subscription("t", "b")
    backend = client.backend
    assert isinstance(backend, RedisBackend)
    copies = [
        postroom.Message(
            id="01FAN",
            queue=q,
            body=b"{}",
            headers={},
            enqueued_at=from_ms(now_ms()),
            available_at=from_ms(now_ms()),
        )
        for q in ("t:a", "t:b")
    ]
    await client.delete_subscription("t", "b")
    assert await backend.fan_out("t", copies) == 1
    assert (await client.stats("t:a")).ready == 1
    [topic] = await client.topics()
    assert (topic.published, topic.unrouted) == (1, 0)


def _delivery(mid: str, lease_end_ms: int) -> postroom.Delivery:
    msg = postroom.Message(
        id=mid,
        queue="q",
        body=b"",
        headers={},
        enqueued_at=from_ms(now_ms()),
        available_at=from_ms(now_ms()),
        attempts=1,
    )
    return postroom.Delivery(msg, f"{mid}.tok", from_ms(lease_end_ms), "me")


def test_redis_prefetched_deliveries_are_handed_out_or_given_back() -> None:
    from postroom.backends.redis._prefetch import Prefetched

    ahead = Prefetched()
    later = now_ms() + 30_000
    got = [_delivery(f"m{i}", later) for i in range(3)]
    assert ahead.put("q", 30_000, "me", got) == []
    assert ahead.take("q", 2, 30_000, "me") == (got[:2], [])
    assert ahead.take("q", 2, 30_000, "me") == (got[2:], [])
    assert ahead.take("q", 2, 30_000, "me") == ([], [])
    # Other claim arguments, or a lease about to end: given back, not handed out.
    ahead.put("q", 30_000, "me", got[:1])
    assert ahead.take("q", 5, 10_000, "me") == ([], got[:1])
    ending = _delivery("e", now_ms() + 10)
    ahead.put("q", 30_000, "me", [ending])
    assert ahead.take("q", 5, 30_000, "me") == ([], [ending])
    ahead.put("q", 30_000, "me", got[:1])
    assert ahead.put("q", 5_000, "me", got[1:2]) == got[:1]
    assert ahead.drain() == got[1:2]


async def test_redis_wait_after_a_claim_is_bounded_by_the_next_due_message(
    client: postroom.AsyncClient,
) -> None:
    """A consumer whose claim returned messages still wakes for a delayed one,
    even when another consumer took the wake-up token."""
    await client.declare_queue("q")
    await client.send("q", "now")
    await client.send("q", "soon", delay=0.8)
    [first] = await client.receive("q", max_messages=10)
    assert first.message.text == '"now"'
    backend = client.backend
    assert isinstance(backend, RedisBackend)
    await backend.redis.delete(backend.key("q", "notify"))  # tokens taken elsewhere
    started = anyio.current_time()
    await backend.wait("q", 20.0)
    assert anyio.current_time() - started < 10.0, "woke when 'soon' became due"
    [second] = await client.receive("q", max_messages=10, wait=2.0)
    assert second.message.text == '"soon"'


async def test_redis_claim_reports_the_earliest_lease_end_or_delayed_message_as_due(
    client: postroom.AsyncClient,
) -> None:
    """The claim script reads the earliest lease once (to sweep ended ones) and
    reports the earliest of it, the leases it grants and the delayed messages as
    the time the queue is next due; after a sweep it reads the leases again."""
    await client.declare_queue("q")
    backend = client.backend
    assert isinstance(backend, RedisBackend)

    def ms(d: postroom.Delivery) -> int:
        return round(d.lease_expires_at.timestamp() * 1000)

    await client.send("q", "later", delay=60)
    await client.send("q", "a")
    [a] = await backend.claim("q", 5, 5_000, "me")  # no lease before: its own
    assert a.message.text == '"a"'
    assert abs(backend._due["q"] - ms(a)) <= 1
    await client.send("q", "b")
    [b] = await backend.claim("q", 5, 30_000, "me")  # an earlier lease held
    assert b.message.text == '"b"' and ms(b) > ms(a)
    assert abs(backend._due["q"] - ms(a)) <= 1
    assert await backend.claim("q", 5, 30_000, "me") == []  # nothing to take
    assert abs(backend._due["q"] - ms(a)) <= 1
    await client.send("q", "c")
    [c] = await backend.claim("q", 5, 50, "me")
    await anyio.sleep(0.2)
    [again] = await backend.claim("q", 5, 50_000, "me")  # swept, then taken
    assert again.id == c.id and again.message.attempts == 2
    assert abs(backend._due["q"] - ms(a)) <= 1
    await client.ack(a)
    await client.ack(b)
    assert await backend.claim("q", 5, 30_000, "me") == []
    assert abs(backend._due["q"] - ms(again)) <= 1
    await client.ack(again)
    assert await backend.claim("q", 5, 30_000, "me") == []
    assert backend._due["q"] - now_ms() > 50_000  # "later"


async def test_redis_single_send_stores_what_the_enqueue_script_stores(
    client: postroom.AsyncClient,
) -> None:
    """A lone send without dedup key (one MULTI/EXEC of plain commands) leaves the
    same keys as the enqueue script, which sends with a dedup key or several
    messages use."""
    await client.declare_queue("q")
    backend = client.backend
    assert isinstance(backend, RedisBackend)
    r = backend.redis

    async def stored(mid: str) -> tuple[object, ...]:
        return (
            await r.zscore(backend.key("q", "queued"), mid),
            await r.zscore(backend.key("q", "live"), mid),
            await r.hexists(backend.key("q", "msg"), mid),
            await r.hexists(backend.key("q", "att"), mid),
        )

    plain = await client.send("q", {"n": 1}, delay=5)
    scripted = await client.send("q", {"n": 1}, delay=5, dedup_key="k")
    url = f"redis://127.0.0.1:6379/0?prefix={backend.prefix}"
    with postroom.connect(url) as sync:  # a lone sync send: plain commands
        sync.declare_queue("q")
        direct = await anyio.to_thread.run_sync(
            lambda: sync.send("q", {"n": 1}, delay=5)
        )
    a, b, c = await stored(plain), await stored(scripted), await stored(direct)
    assert a[2:] == b[2:] == c[2:] == (True, False)
    assert abs(float(a[0]) - float(b[0])) < 1000  # type: ignore[arg-type]
    assert abs(float(a[0]) - float(c[0])) < 1000  # type: ignore[arg-type]
    assert float(a[0]) - float(a[1]) >= 5000  # type: ignore[arg-type]
    assert float(c[0]) - float(c[1]) >= 5000  # type: ignore[arg-type]
    [m] = [m for m in await client.peek("q") if m.id == direct]
    assert (m.text, m.headers, m.dedup_key) == (
        '{"n":1}',
        {"content-type": "application/json"},
        None,
    )
    counters = await client.backend.counters(["q"])
    assert counters["q"]["sent"] == 3
    assert await r.llen(backend.key("q", "notify")) == 3  # each send woke a consumer
    lengths = []
    for _ in range(40):
        await client.send("q", "x")
        lengths.append(await r.llen(backend.key("q", "notify")))
    # Bounded, as the script's: trimmed to 16 once it holds more than 32.
    assert max(lengths) == 32 and lengths[-1] < 32 and 16 in lengths[29:]
    with postroom.connect(url) as sync:  # plain commands trim it the same way
        for _ in range(40):
            await anyio.to_thread.run_sync(sync.send, "q", "x")
            lengths.append(await r.llen(backend.key("q", "notify")))
    assert max(lengths[40:]) == 32 and 16 in lengths[40:]
    got = await client.receive("q", max_messages=100)
    assert len(got) == 80 and all(d.message.text == '"x"' for d in got)


async def test_redis_plain_send_to_a_queue_deleted_meanwhile_leaves_nothing(
    client: postroom.AsyncClient,
) -> None:
    """A lone send (plain commands) whose queue was deleted by someone else
    while this client still knew its policy raises QueueNotFound and takes its
    writes back, from the async and the sync client alike."""
    await client.declare_queue("gone")
    backend = client.backend
    assert isinstance(backend, RedisBackend)
    url = f"redis://127.0.0.1:6379/0?prefix={backend.prefix}"
    sync = postroom.connect(url)
    try:
        await anyio.to_thread.run_sync(sync.send, "gone", {"n": 0})
        async with postroom.connect_async(url) as other:
            await other.delete_queue("gone")
        with pytest.raises(postroom.QueueNotFound):
            await client.send("gone", {"n": 1})
        with pytest.raises(postroom.QueueNotFound):
            await anyio.to_thread.run_sync(sync.send, "gone", {"n": 2})
    finally:
        sync.close()
    r = backend.redis
    for kind in ("msg", "queued", "live", "policy"):
        assert not await r.exists(backend.key("gone", kind)), kind
    assert int(await r.hget(backend.key("gone", "counters"), "sent") or 0) == 0


async def test_redis_sync_plain_sends_take_one_round_trip_and_one_read(
    client: postroom.AsyncClient,
) -> None:
    """A lone sync send is one round trip even when it trims the wake-up list
    (the trim is in its transaction, as the script's is in the script), and
    reads the socket once (polling or blocking): its later replies are taken from
    hiredis's reader."""
    backend = client.backend
    assert isinstance(backend, RedisBackend)
    url = f"redis://127.0.0.1:6379/0?prefix={backend.prefix}"
    notify = backend.key("q", "notify")
    lengths, reads, follow_ups = [1], [], []
    with postroom.connect(url) as sync:
        sync.declare_queue("q")
        sync.send("q", "x")  # connected (its handshake is read apart)
        direct = sync.aclient.backend.direct  # type: ignore[attr-defined]
        direct.commands = lambda cmds: follow_ups.append(cmds)
        parser = direct._kept_conn()._parser
        read = parser.read_from_socket
        parser.read_from_socket = lambda *a, **k: reads.append(1) or read(*a, **k)
        spin = direct._spin.read  # a read that polls before it blocks counts too
        direct._spin.read = lambda *a: spin(*a) and not reads.append(1)
        for _ in range(39):
            await anyio.to_thread.run_sync(sync.send, "q", "x")
            lengths.append(await backend.redis.llen(notify))
    assert follow_ups == [] and len(reads) == 39
    # Bounded as the script bounds it: trimmed to 16 once it holds more than 32.
    assert lengths[:32] == list(range(1, 33)) and lengths[32:34] == [16, 17]


async def test_redis_pipelined_replies_come_from_the_reader(
    client: postroom.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replies that arrive with a pipeline's first are parsed from hiredis's
    reader, not read one coroutine each: the backend's pool speaks RESP2 (redis-py
    8 speaks RESP3 unless told, and a RESP3 reply cannot be taken that way)."""
    pytest.importorskip("hiredis")
    from postroom.backends.redis import _scripts

    taken: list[bool] = []

    def spy(conn: object) -> object:
        reply = _direct_buffered(conn)
        taken.append(reply is not _scripts.PARTIAL)
        return reply

    _direct_buffered = _scripts.buffered
    monkeypatch.setattr(_scripts, "buffered", spy)
    await client.declare_queue("q")
    await client.send_many("q", [1, 2])
    backend = client.backend
    keys = backend.script_keys("q")  # type: ignore[attr-defined]
    call = ("claim", keys, (now_ms(), 1, 30_000, "t", "c"))
    got = await backend.scripts.run_many([call, call])  # type: ignore[attr-defined]
    assert [len(reply[1]) for reply in got] == [3, 3]  # id, payload, attempts
    assert taken == [True], taken
