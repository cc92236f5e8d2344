"""boto3 against a real ``postroom serve`` (uvicorn on a free loopback port) on
SQLite, Redis and PostgreSQL, each isolated (a file, a key prefix, a schema)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.contract.conftest import _delete_prefixes
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


def _backend_url(kind: str, folder: Path, uid: str) -> tuple[str, Callable[[], None]]:
    if kind == "sqlite":
        return f"sqlite:///{folder}/sqs.db", lambda: None
    if kind == "redis":
        require_service("redis", "127.0.0.1", 6379)
        return f"redis://127.0.0.1:6379/0?prefix={uid}", lambda: _delete_prefixes(
            [6379], [uid]
        )
    require_service("postgresql", "127.0.0.1", 5432)

    def drop() -> None:
        import psycopg

        dsn = "postgresql://postgres@127.0.0.1:5432/test"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{uid}" CASCADE')

    return f"postgresql://postgres@127.0.0.1:5432/test?schema={uid}", drop


# Session scope: one server per backend for the whole run (tests use queues of
# their own), so the SQS tests start four servers in all.
@pytest.fixture(scope="session", params=["sqlite", "redis", "postgres"])
def sqs_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """An open server (no tokens) on each backend."""
    folder = tmp_path_factory.mktemp(f"sqs-{request.param}")
    url, cleanup = _backend_url(request.param, folder, "s" + uuid.uuid4().hex[:12])
    srv = start_server(folder, url=url)
    yield srv
    stop_server(srv)
    cleanup()


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
