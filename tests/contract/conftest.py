"""The contract suite runs unchanged on every backend listed in ``BACKENDS``.

A backend joins by adding one entry: a function from ``(tmp_path, unique id)`` to a
URL with per-test isolation (a fresh file, a key prefix, a schema...).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import postroom
from tests.conftest import require_service


def _memory(tmp_path: Path, uid: str) -> str:
    return f"memory://{uid}"


def _sqlite(tmp_path: Path, uid: str) -> str:
    return f"sqlite:///{tmp_path}/postroom.db"


BACKENDS: dict[str, Callable[[Path, str], str]] = {
    "memory": _memory,
    "sqlite": _sqlite,
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


@pytest.fixture
def client(url: str) -> Iterator[postroom.Client]:
    """A sync client on a fresh backend."""
    with postroom.connect(url) as c:
        yield c


__all__ = ["BACKENDS", "DURABLE", "require_service"]
