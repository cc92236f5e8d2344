"""Shared fixtures: service availability (skip on a laptop, fail in CI)."""

from __future__ import annotations

import os
import socket

import pytest

REQUIRE_SERVICES = os.environ.get("POSTROOM_REQUIRE_SERVICES") == "1"


def require_service(name: str, host: str, port: int) -> None:
    """Skip the test when a server is unreachable; fail instead in CI."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}; POSTROOM_REQUIRE_SERVICES=1 requires it")
        pytest.skip(f"{reason}; start it to run these tests")
