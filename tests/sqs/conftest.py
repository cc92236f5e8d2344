"""boto3 against a real ``postroom serve`` (uvicorn on a free loopback port) on
SQLite, Redis and PostgreSQL, each isolated (a file, a key prefix, a schema)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.conftest import BACKENDS, cleanup_backends
from tests.http.conftest import Server, start_server, stop_server

boto3 = pytest.importorskip("boto3")

ADMIN = "sqs-admin-token-0123456789abcdef"
ORDERS = "sqs-orders-token-0123456789abcdef"
TOKENS = {
    "tokens": [
        {"name": "admin", "token": ADMIN, "scopes": ["admin"]},
        {
            "name": "orders",
            "token": ORDERS,
            "scopes": ["send", "receive"],
            "queues": ["orders-*"],
        },
    ]
}


# The backends the endpoint is tested on; POSTROOM_SQS_BACKENDS=nats,rabbitmq (any
# of tests/contract's BACKENDS but memory) runs the same tests on others.
SQS_BACKENDS = os.environ.get("POSTROOM_SQS_BACKENDS", "sqlite,redis,postgres")


# Session scope: one server per backend for the whole run (tests use queues of
# their own), so the SQS tests start four servers in all.
@pytest.fixture(scope="session", params=SQS_BACKENDS.split(","))
def sqs_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """An open server (no tokens) on each backend."""
    folder = tmp_path_factory.mktemp(f"sqs-{request.param}")
    url = BACKENDS[request.param](folder, "s" + uuid.uuid4().hex[:12])
    try:
        srv = start_server(folder, url=url)
        yield srv
        stop_server(srv)
    finally:
        cleanup_backends()


@pytest.fixture(scope="session")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with an admin token and a send+receive token for ``orders-*``."""
    folder = tmp_path_factory.mktemp("sqs-secured")
    tokens = folder / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    srv = start_server(folder, extra=("--tokens-file", str(tokens)))
    yield srv
    stop_server(srv)


def sqs_client(server: Server, key: str = "any", secret: str = "any", **kw: Any) -> Any:
    """A boto3 SQS client of ``server`` (no retries: errors show at once)."""
    from botocore.config import Config

    return boto3.client(
        "sqs",
        endpoint_url=server.base,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **kw),
    )


@pytest.fixture
def sqs(sqs_server: Server) -> Any:
    """A boto3 client of the open server, any credentials."""
    return sqs_client(sqs_server)


@pytest.fixture
def name() -> str:
    """A queue name of this test alone."""
    return f"q-{uuid.uuid4().hex[:10]}"
