"""The push egress policy: which addresses pushes may reach (SSRF, issue 10)."""

from __future__ import annotations

import ipaddress
import uuid

import anyio
import httpx
import pytest

from postroom import AsyncClient, Backoff, ConfigurationError
from postroom.runtime.egress import (
    ALLOW_ENV,
    ALLOW_LISTED,
    EgressPolicy,
    EgressRefused,
    EgressTransport,
    address_kind,
    describe_answer,
)
from postroom.runtime.push import Pusher
from tests.push.conftest import Receiver, eventually, serve_receiver

FAST = Backoff(initial=0.05, factor=1.0, max=0.05, jitter=False)

REFUSED = {
    "127.0.0.1": "loopback",
    "127.9.9.9": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "100.64.0.1": "non-global",
    "192.0.2.10": "private",  # documentation
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "link-local",
    "2002:7f00:1::1": "loopback",  # 6to4 of 127.0.0.1
    "64:ff9b::a00:1": "private",  # NAT64 of 10.0.0.1
}
GLOBAL = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", list(REFUSED))
def test_address_kind_refuses_every_non_global_address(address: str) -> None:
    kind = address_kind(ipaddress.ip_address(address))
    assert kind is not None and kind.startswith(REFUSED[address])


@pytest.mark.parametrize("address", GLOBAL)
def test_address_kind_allows_global_unicast(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) is None


def test_policy_allow_list_names_networks_addresses_and_hosts() -> None:
    policy = EgressPolicy.parse("10.0.0.0/8, ::1 hooks.internal,127.0.0.1")
    assert policy.refusal("10.9.9.9", "10.9.9.9") is None
    assert policy.refusal("::1", "::1") is None
    assert policy.refusal("x", "127.0.0.1") is None
    assert policy.names("HOOKS.internal") and policy.names("[::1]")
    refused = policy.refusal("metadata", "169.254.169.254")
    assert refused is not None
    assert "link-local" in refused and "--push-allow 169.254.169.254" in refused
    assert EgressPolicy.from_env({ALLOW_ENV: "192.168.0.0/16"}).networks == (
        ipaddress.ip_network("192.168.0.0/16"),
    )
    assert EgressPolicy.from_env({}) == EgressPolicy()


@pytest.mark.parametrize("entry", ["http://x", "a b/c", "10.0.0.0/33", "-bad-"])
def test_policy_refuses_bad_entries(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="allow-list entry"):
        EgressPolicy.parse([entry])


@pytest.mark.anyio
async def test_creation_check_refuses_internal_targets() -> None:
    policy = EgressPolicy()
    for url in (
        "http://127.0.0.1:6379/",
        "http://localhost:8000/hook",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/hook",
    ):
        with pytest.raises(ConfigurationError, match="push-allow"):
            await policy.check_endpoint(url)
    await EgressPolicy.parse("127.0.0.1,::1").check_endpoint("http://localhost:9/")
    await policy.check_endpoint("http://no-such-host.invalid/")  # checked later


@pytest.mark.anyio
async def test_transport_connects_to_the_checked_address() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    inner = httpx.MockTransport(record)
    allowed = EgressTransport(EgressPolicy.parse("127.0.0.0/8,::1"), inner)
    async with httpx.AsyncClient(transport=allowed) as http:
        assert (await http.post("http://localhost:8123/hook")).status_code == 204
    [request] = seen
    assert request.url.host in ("127.0.0.1", "::1")
    assert request.headers["host"] == "localhost:8123"
    assert request.extensions["sni_hostname"] == "localhost"
    assert request.extensions[ALLOW_LISTED] is True
    refused = EgressTransport(EgressPolicy(), inner)
    async with httpx.AsyncClient(transport=refused) as http:
        with pytest.raises(EgressRefused, match="loopback"):
            await http.post("http://localhost:8123/hook")
    assert len(seen) == 1


def test_dead_letter_keeps_an_excerpt_only_for_allow_listed_targets() -> None:
    def answer(listed: bool) -> str:
        request = httpx.Request("POST", "http://h/", extensions={ALLOW_LISTED: listed})
        body = b"secret \x1b[31m" + b"x" * 500
        response = httpx.Response(500, content=body, request=request)
        return describe_answer(response, body[:200])

    public = answer(False)
    assert public == "HTTP 500 Internal Server Error (512 bytes)"
    listed = answer(True)
    assert listed.startswith("HTTP 500 Internal Server Error (512 bytes): secret ")
    assert "\x1b" not in listed and "\\x1b" in listed


async def _dead_letter_of(
    client: AsyncClient, endpoint: str, pusher: Pusher
) -> tuple[str, str]:
    """Publish one event to a push subscription of ``endpoint`` (one attempt);
    the dead letter's error type and message."""
    topic = f"t{uuid.uuid4().hex[:8]}"
    sub = await client.create_subscription(
        topic, "hook", push_endpoint=endpoint, max_attempts=1
    )
    await client.declare_queue(sub.queue, max_attempts=1, backoff=FAST)
    async with anyio.create_task_group() as tg:
        tg.start_soon(pusher.run)
        await client.publish(topic, {"n": 1})

        async def dead() -> bool:
            return len(await client.dead_letters(sub.queue)) == 1

        await eventually(dead, what="a dead letter")
        pusher.stop()
    [dl] = await client.dead_letters(sub.queue)
    assert dl.error is not None
    return dl.error.type, dl.error.message


def _pusher(client: AsyncClient, policy: EgressPolicy) -> Pusher:
    return Pusher(client, timeout=2.0, refresh=0.1, poll=0.1, egress=policy)


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_push_to_loopback_is_refused_by_default(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    with serve_receiver() as rx:
        endpoint = rx.endpoint().replace("127.0.0.1", host)
        async with AsyncClient(f"memory://egress-{uuid.uuid4().hex[:8]}") as client:
            pusher = Pusher(client, timeout=2.0, refresh=0.1, poll=0.1)
            kind, message = await _dead_letter_of(client, endpoint, pusher)
        assert rx.count() == 0  # nothing reached the receiver
    assert kind == "PushRefused"
    assert "loopback" in message and "--push-allow" in message


@pytest.mark.anyio
async def test_push_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.status = 302
    receiver.answer_headers = {"location": receiver.endpoint("/elsewhere")}
    async with AsyncClient(f"memory://egress-{uuid.uuid4().hex[:8]}") as client:
        pusher = _pusher(client, EgressPolicy.parse("127.0.0.1"))
        kind, message = await _dead_letter_of(client, receiver.endpoint(), pusher)
    assert (kind, receiver.count("/hook"), receiver.count("/elsewhere")) == (
        "PushHTTPError",
        1,
        0,
    )
    assert "HTTP 302" in message


@pytest.mark.anyio
async def test_allow_listed_network_reaches_the_receiver() -> None:
    with serve_receiver() as rx:
        rx.status, rx.answer = 503, b"busy: \x1b]0;pwned\x07"
        async with AsyncClient(f"memory://egress-{uuid.uuid4().hex[:8]}") as client:
            pusher = _pusher(client, EgressPolicy.parse("127.0.0.0/8"))
            kind, message = await _dead_letter_of(client, rx.endpoint(), pusher)
        assert rx.count() == 1
    assert kind == "PushHTTPError"
    size = len(rx.answer)
    excerpt = "busy: \\x1b]0;pwned\\x07"
    assert message.endswith(f"HTTP 503 Service Unavailable ({size} bytes): {excerpt}")


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio."""
    return "asyncio"
