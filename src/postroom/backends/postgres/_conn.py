"""PostgreSQL plumbing: URL settings, the named queries, schema creation, errors."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import psycopg
import psycopg.errors

from ...model.errors import BackendError, ConfigurationError

__all__ = [
    "MIN_SERVER_VERSION",
    "PostgresSettings",
    "init_schema",
    "load_queries",
    "translated",
]

MIN_SERVER_VERSION = 130000
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_SCHEMA = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
_OWN_PARAMS = ("schema", "pool_min", "pool_max", "pool_timeout")
# A transaction that lost a deadlock or a serialization race was rolled back
# whole, so running the operation again is safe.
_RETRY_ERRORS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
_RETRIES = 3


@functools.cache
def load_queries(schema: str) -> dict[str, str]:
    """The named blocks of ``queries.sql`` with ``{schema}`` set to ``schema``."""
    text = resources.files(__package__).joinpath("queries.sql").read_text("utf-8")
    parts = _NAME.split(text)
    quoted = '"' + schema + '"'
    return {
        name: body.strip().removesuffix(";").replace("{schema}", quoted)
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """Where the database is and how postroom uses it.

    From ``postgresql://user:password@host:port/db`` (or ``postgres://``) with the
    libpq query parameters (``sslmode``, ``connect_timeout``...) plus postroom's:
    ``schema`` (default ``postroom``: the schema that holds postroom's tables,
    created on connect), ``pool_min``/``pool_max`` (connections kept in the pool,
    default 1 and 10) and ``pool_timeout`` (seconds an operation waits for a free
    connection, default 30).
    """

    conninfo: str
    schema: str = "postroom"
    pool_min: int = 1
    pool_max: int = 10
    pool_timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> PostgresSettings:
        """Parse a ``postgresql://`` URL."""
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        own = {k: v for k, v in params if k in _OWN_PARAMS}
        rest = [(k, v) for k, v in params if k not in _OWN_PARAMS]
        schema = own.get("schema", "postroom")
        if not _SCHEMA.match(schema):
            raise ConfigurationError(
                f"invalid schema {schema!r} in {url!r}: use 1-48 letters, digits "
                "and underscores, starting with a letter, e.g. ?schema=postroom"
            )
        # quote, not quote_plus: libpq decodes %XX in URIs but not "+" as a space
        query = urlencode(rest, quote_via=quote)
        conninfo = f"postgresql://{parts.netloc}{parts.path}"
        if query:
            conninfo += "?" + query
        try:
            pool_min = int(own.get("pool_min", 1))
            pool_max = int(own.get("pool_max", max(10, pool_min)))
            pool_timeout = float(own.get("pool_timeout", 30.0))
        except ValueError as exc:
            raise ConfigurationError(
                f"invalid pool setting in {url!r}: pool_min and pool_max are whole "
                f"numbers, pool_timeout is seconds ({exc})"
            ) from None
        if not 0 <= pool_min <= pool_max or pool_max < 1 or pool_timeout <= 0:
            raise ConfigurationError(
                f"invalid pool settings in {url!r}: need 0 <= pool_min <= pool_max, "
                "pool_max >= 1 and pool_timeout > 0"
            )
        return cls(conninfo, schema, pool_min, pool_max, pool_timeout)

    @property
    def where(self) -> str:
        """Host, port and database, for messages (never the password)."""
        parts = urlsplit(self.conninfo)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
        return f"{host}:{port}{parts.path or '/'} (schema {self.schema})"

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this schema's queues."""
        return f"postroom_{self.schema}"


async def init_schema(
    conn: psycopg.AsyncConnection[Any], queries: dict[str, str], schema: str
) -> None:
    """Check the server version and create the schema unless it is complete."""
    version = conn.info.server_version
    if version < MIN_SERVER_VERSION:
        raise ConfigurationError(
            f"postroom needs PostgreSQL 13 or later; this server is "
            f"{version // 10000}.{version % 10000}: upgrade it"
        )
    ready = queries["schema_ready"]
    table = {"table": f'"{schema}".rates'}  # the schema's last table
    row = await (await conn.execute(ready, table)).fetchone()
    if row is not None and row[0]:
        return
    async with conn.transaction():
        # Two processes connecting at once to a new schema would otherwise race
        # on CREATE ... IF NOT EXISTS (a unique violation in the catalog).
        await conn.execute(queries["schema_lock"], {"key": f"postroom:{schema}"})
        await conn.execute(queries["schema"].encode())


class _Located(Protocol):
    settings: PostgresSettings

    async def recover(self) -> None:
        """Called after a connection failed (e.g. the server restarted)."""


_P = ParamSpec("_P")
_T = TypeVar("_T")
_B = TypeVar("_B", bound=_Located)


def backend_error(exc: Exception, where: str) -> BackendError:
    """A driver error as a postroom error that says what to do."""
    if isinstance(exc, psycopg.OperationalError | OSError | asyncio.TimeoutError):
        return BackendError(
            f"PostgreSQL at {where} failed: {exc} ({type(exc).__name__}); check that "
            "the server is running and reachable and that the URL is right"
        )
    return BackendError(f"PostgreSQL error at {where}: {exc} ({type(exc).__name__})")


def translated(
    fn: Callable[Concatenate[_B, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_B, _P], Coroutine[Any, Any, _T]]:
    """Turn psycopg (and socket) errors into :class:`BackendError`; run an
    operation again when its transaction lost a deadlock."""

    @functools.wraps(fn)
    async def wrapper(self: _B, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        for attempt in range(_RETRIES):
            try:
                return await fn(self, *args, **kwargs)
            except _RETRY_ERRORS as exc:
                if attempt == _RETRIES - 1:
                    raise backend_error(exc, self.settings.where) from exc
            except (psycopg.Error, OSError) as exc:
                if isinstance(exc, psycopg.OperationalError | OSError):
                    await self.recover()
                raise backend_error(exc, self.settings.where) from exc
        raise AssertionError("unreachable")

    return wrapper  # type: ignore[return-value]
