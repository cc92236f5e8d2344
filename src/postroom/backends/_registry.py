"""Which backend class opens which URL scheme."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..model.errors import ConfigurationError, MissingDependency

if TYPE_CHECKING:
    from .base import Backend

__all__ = ["open_backend", "register_scheme"]

_SCHEMES: dict[str, tuple[str, str, str]] = {
    "memory": ("postroom.backends.memory", "MemoryBackend", ""),
    "sqlite": ("postroom.backends.sqlite", "SqliteBackend", ""),
    "redis": ("postroom.backends.redis", "RedisBackend", "redis"),
    "rediss": ("postroom.backends.redis", "RedisBackend", "redis"),
    "valkey": ("postroom.backends.redis", "RedisBackend", "redis"),
    "postgresql": ("postroom.backends.postgres", "PostgresBackend", "postgres"),
    "postgres": ("postroom.backends.postgres", "PostgresBackend", "postgres"),
    "nats": ("postroom.backends.nats", "NatsBackend", "nats"),
    "amqp": ("postroom.backends.rabbitmq", "RabbitBackend", "rabbitmq"),
    "amqps": ("postroom.backends.rabbitmq", "RabbitBackend", "rabbitmq"),
}


# Backends of the product specification that this version does not ship yet
# (none now: every backend of SPEC §3 is in _SCHEMES).
_PLANNED: dict[str, str] = {}


def register_scheme(scheme: str, module: str, cls: str, extra: str = "") -> None:
    """Make ``open_backend`` open ``scheme://`` URLs with ``module.cls``."""
    _SCHEMES[scheme] = (module, cls, extra)


def open_backend(url: str) -> Backend:
    """Build (not yet connect) the backend for ``url``, chosen by its scheme.

    A malformed URL (unknown scheme, bad port, ...) raises
    :class:`ConfigurationError` naming the problem (the password never shown).
    """
    from ._urls import HOST_REQUIRED, check_authority, redact

    scheme = urlsplit(url).scheme.lower()
    if not scheme or "://" not in url:
        raise ConfigurationError(
            f"{url!r} is not a postroom URL: use e.g. sqlite:///postroom.db, "
            "memory://, or redis://localhost:6379/0"
        )
    try:
        module_name, cls_name, extra = _SCHEMES[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        if scheme in _PLANNED:
            raise ConfigurationError(
                f"the {_PLANNED[scheme]} backend ({scheme}://) is not available in "
                f"this version of postroom: use one of {known}"
            ) from None
        raise ConfigurationError(
            f"unknown URL scheme {scheme!r} in {redact(url)!r}: postroom supports "
            f"{known}"
        ) from None
    required = scheme in HOST_REQUIRED
    check_authority(url, host_required=required, example=f"{scheme}://localhost")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra and exc.name and not exc.name.startswith("postroom"):
            raise MissingDependency(
                f"the {scheme}:// backend needs {exc.name!r}: "
                f"pip install 'postroom[{extra}]'"
            ) from exc
        raise
    backend_cls: type[Backend] = getattr(module, cls_name)
    return backend_cls(url)
