"""The Redis / Valkey backend (``pip install 'postroom[redis]'``)."""

from __future__ import annotations

from ._backend import RedisBackend

__all__ = ["RedisBackend"]
