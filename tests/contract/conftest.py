"""The contract suite (:mod:`postroom.testing`) runs unchanged on every backend
listed in ``BACKENDS``.

A backend joins by adding one entry: a function from ``(tmp_path, unique id)`` to a
URL with per-test isolation (a fresh file, a key prefix, a schema...).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from postroom.testing import client
from tests.conftest import require_service
from tests.redis_cluster import cluster_port, cluster_ports


def _memory(tmp_path: Path, uid: str) -> str:
    return f"memory://{uid}"


def _sqlite(tmp_path: Path, uid: str) -> str:
    return f"sqlite:///{tmp_path}/postroom.db"


_REDIS_PREFIXES: list[str] = []


def _redis(tmp_path: Path, uid: str) -> str:
    require_service("redis", "127.0.0.1", 6379)
    _REDIS_PREFIXES.append(uid)
    return f"redis://127.0.0.1:6379/0?prefix={uid}"


_CLUSTER_PREFIXES: list[str] = []


def _redis_cluster(tmp_path: Path, uid: str) -> str:
    require_service("redis", "127.0.0.1", 6379)  # same packages as the server
    port = cluster_port()
    _CLUSTER_PREFIXES.append(uid)
    return f"redis://127.0.0.1:{port}/0?prefix={uid}"


_POSTGRES_SCHEMAS: list[str] = []


def _postgres(tmp_path: Path, uid: str) -> str:
    require_service("postgresql", "127.0.0.1", 5432)
    _POSTGRES_SCHEMAS.append(uid)
    return f"postgresql://postgres@127.0.0.1:5432/test?schema={uid}"


def _drop_postgres_schemas() -> None:
    """Drop the PostgreSQL schemas a test used."""
    import psycopg

    with psycopg.connect(
        "postgresql://postgres@127.0.0.1:5432/test", autocommit=True
    ) as conn:
        # A process the test left running must not hang the teardown.
        conn.execute("SET lock_timeout = '10s'")
        while _POSTGRES_SCHEMAS:
            schema = _POSTGRES_SCHEMAS.pop()
            with contextlib.suppress(psycopg.errors.LockNotAvailable):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


_NATS_PREFIXES: list[str] = []


def _nats(tmp_path: Path, uid: str) -> str:
    require_service("nats", "127.0.0.1", 4222)
    _NATS_PREFIXES.append(uid)
    return f"nats://127.0.0.1:4222?prefix={uid}"


def _delete_nats_prefixes() -> None:
    """Delete the streams and KV buckets of the NATS prefixes a test used."""
    import anyio

    from postroom.backends.nats._conn import Jet
    from postroom.backends.nats._names import Names

    names = [Names(p) for p in _NATS_PREFIXES]
    _NATS_PREFIXES.clear()

    async def delete() -> None:
        jet = Jet(["nats://127.0.0.1:4222"], {})
        await jet.connect()
        try:
            for stream in await jet.stream_names():
                if any(n.owns(stream) for n in names):
                    await jet.delete_stream(stream)
        finally:
            await jet.close()

    anyio.run(delete)


@pytest.fixture(autouse=True)
def _redis_cleanup() -> Iterator[None]:
    """Delete the keys of the Redis prefixes, the PostgreSQL schemas and the
    NATS streams a test used (one autouse fixture, imported by the other suites
    that use BACKENDS)."""
    yield
    cleanup_backends()


def cleanup_backends() -> None:
    """Delete what the URLs built by ``BACKENDS`` since the last call used."""
    if _POSTGRES_SCHEMAS:
        _drop_postgres_schemas()
    if _NATS_PREFIXES:
        _delete_nats_prefixes()
    if _REDIS_PREFIXES:
        _delete_prefixes([6379], _REDIS_PREFIXES)
    if _CLUSTER_PREFIXES:
        _delete_prefixes(cluster_ports(), _CLUSTER_PREFIXES)
    if _RABBIT_PREFIXES:
        from tests.rabbitmq import delete_prefixes

        delete_prefixes(_RABBIT_PREFIXES)


def _delete_prefixes(ports: list[int], prefixes: list[str]) -> None:
    """Delete the keys under each prefix on each server (each cluster node holds
    its own slots' keys, so they are deleted node by node, slot by slot)."""
    import redis

    patterns = [f"{{{prefix}[:}}]*" for prefix in prefixes]
    prefixes.clear()
    for port in ports:
        with redis.Redis(host="127.0.0.1", port=port, db=0) as r:
            for pattern in patterns:
                for key in r.scan_iter(match=pattern):
                    r.delete(key)


_RABBIT_PREFIXES: list[str] = []


def _rabbitmq(tmp_path: Path, uid: str) -> str:
    require_service("rabbitmq", "127.0.0.1", 5672)
    _RABBIT_PREFIXES.append(uid)
    return f"amqp://guest:guest@127.0.0.1:5672/?prefix={uid}"


BACKENDS: dict[str, Callable[[Path, str], str]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "redis-cluster": _redis_cluster,
    "postgres": _postgres,
    "nats": _nats,
    "rabbitmq": _rabbitmq,
}

# Backends whose state is shared across processes (used by real-process tests).
DURABLE = [name for name in BACKENDS if name != "memory"]


@pytest.fixture(params=list(BACKENDS))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, isolated backend URL, once per backend."""
    return BACKENDS[request.param](tmp_path, "t" + uuid.uuid4().hex[:12])


@pytest.fixture(params=DURABLE)
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """As ``url``, for backends shared between processes."""
    return BACKENDS[request.param](tmp_path, "t" + uuid.uuid4().hex[:12])


__all__ = ["BACKENDS", "DURABLE", "client", "require_service"]
