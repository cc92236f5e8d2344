"""The CQRS example end to end: two real service processes over one backend."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.contract.conftest import (
    BACKENDS,
    DURABLE,
    _redis_cleanup,  # noqa: F401 - autouse: drop keys
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cqrs"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Service:
    """One example service running as a subprocess, with its log in a file."""

    def __init__(self, script: str, tmp: Path, url: str) -> None:
        self.port = free_port()
        self.log = tmp / f"{script}.log"
        self.base = f"http://127.0.0.1:{self.port}"
        db = tmp / f"{script}.db"
        argv = [sys.executable, str(EXAMPLE / f"{script}.py"), "--port", str(self.port)]
        env = {**os.environ, "POSTROOM_URL": url}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "--db", str(db)], stdout=out, stderr=subprocess.STDOUT, env=env
            )

    def wait_ready(self, http: httpx.Client, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.log.name} exited early:\n{self.log.read_text()}")
            try:
                http.get(self.base + "/products/0")
                return
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"{self.log.name} not ready:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


@pytest.fixture(params=DURABLE)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return BACKENDS[request.param](tmp_path, "cqrs" + uuid.uuid4().hex[:8])


@pytest.fixture
def services(backend_url: str, tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    write = Service("write_service", tmp_path, backend_url)
    read = Service("read_service", tmp_path, backend_url)
    try:
        yield write, read
    finally:
        write.stop()
        code = read.stop()
        assert code == 0, f"read service exited {code}:\n{read.log.read_text()}"


def wait_for(
    http: httpx.Client, url: str, read: Service, timeout: float = 20.0
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = http.get(url)
        if resp.status_code == 200:
            return resp.json()  # type: ignore[no-any-return]
        time.sleep(0.05)
    pytest.fail(f"{url} never appeared:\n{read.log.read_text()}")


def test_posted_product_appears_in_the_read_model(
    services: tuple[Service, Service],
) -> None:
    write, read = services
    with httpx.Client(timeout=10) as http:
        write.wait_ready(http)
        read.wait_ready(http)  # its subscription exists once it serves HTTP
        created = []
        for sku, name, cents in [("A-1", "Kettle", 2999), ("B-2", "Toaster", 4550)]:
            resp = http.post(
                write.base + "/products",
                json={"sku": sku, "name": name, "price_cents": cents},
            )
            assert resp.status_code == 201, resp.text
            created.append(resp.json())
        again = http.post(
            write.base + "/products",
            json={"sku": "A-1", "name": "Kettle", "price_cents": 2999},
        )
        assert again.json()["id"] == created[0]["id"]  # idempotent by SKU
        bad = http.post(write.base + "/products", json={"sku": "", "price_cents": -1})
        assert bad.status_code == 422

        first = wait_for(http, f"{read.base}/products/{created[0]['id']}", read)
        assert (first["sku"], first["name"], first["price"]) == (
            "A-1",
            "Kettle",
            "29.99",
        )
        wait_for(http, f"{read.base}/products/{created[1]['id']}", read)
        listed = http.get(read.base + "/products").json()
        assert [p["sku"] for p in listed] == ["A-1", "B-2"]
