"""PostgreSQL does what the reference ``memory://`` backend does, step for step
(the seeded scripts of ``test_sqlite_parity.py``, run against PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.conftest import require_service
from tests.integration.test_sqlite_parity import _run

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def url() -> Iterator[str]:
    require_service("postgresql", "127.0.0.1", 5432)
    schema = "parity" + uuid.uuid4().hex[:10]
    yield f"{ADMIN}?schema={schema}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_postgres_matches_memory_step_for_step(url: str, seed: int) -> None:
    memory = f"memory://parity-{uuid.uuid4().hex[:10]}"
    asyncio.run(_run(memory, url, seed))
