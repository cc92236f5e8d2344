"""``rediss://``: the whole path (scripts, transactions, waits) over TLS, against a
redis-server of the test's own with a certificate made for the test."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import postroom
from tests.integration.test_redis_restart import RedisServer, _free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.fail("redis-server and openssl are needed (apt-get install them)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    port = _free_port()
    srv = RedisServer(
        tmp_path,
        port,
        "--port", "0",
        "--tls-port", str(port),
        "--tls-cert-file", str(cert),
        "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert),
        "--tls-auth-clients", "no",
    )  # fmt: skip
    srv.start()
    yield srv, cert
    srv.stop()


async def test_rediss_url_runs_the_queue_contract_basics(
    tls_server: tuple[RedisServer, Path],
) -> None:
    srv, cert = tls_server
    url = f"rediss://127.0.0.1:{srv.port}/0?ssl_ca_certs={cert}"
    async with postroom.connect_async(url) as c:
        await c.declare_queue("q", max_attempts=2)
        await c.send("q", {"n": 1})
        await c.send_many("q", [{"n": 2}, {"n": 3}])
        got = await c.receive("q", max_messages=10, wait=1.0)
        assert sorted(d.message.json()["n"] for d in got) == [1, 2, 3]
        assert await c.ack_many(got) == []
        # A waiting consumer is woken over TLS too.
        await c.send("q", "later", delay=0.3)
        [d] = await c.receive("q", wait=5.0)
        assert d.message.json() == "later"
        await c.ack(d)
        assert (await c.stats("q")).ready == 0

        def sync_sends() -> list[str]:  # from the calling thread, over TLS too
            with postroom.connect(url) as s:
                s.declare_queue("q", max_attempts=2)
                return [s.send("q", {"n": n}) for n in range(4, 8)]

        sent = await anyio.to_thread.run_sync(sync_sends)
        got = await c.receive("q", max_messages=10, wait=1.0)
        assert [d.message.id for d in got] == sent
