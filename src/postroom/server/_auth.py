"""Bearer tokens with scopes and queue-name patterns: parsing and checks (pure).

A token grants one or more scopes on the queues (or topics) whose names match one
of its glob patterns (``fnmatch`` syntax: ``orders.*``, ``*``):

- ``send``: send messages and publish events;
- ``receive``: receive, ack, retry, reject and extend;
- ``admin``: everything, including dead letters, purge, subscriptions and the
  dashboard.

Reading a queue's stats needs any scope on it. Tokens come from a file (TOML or
JSON, ``{"tokens": [{"token": ..., "scopes": [...], "queues": [...]}]}``) or from
``POSTROOM_TOKENS`` as ``token:scope+scope:pattern|pattern;token2:...`` (patterns
default to ``*``).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ..model.errors import ConfigurationError

__all__ = [
    "SCOPES",
    "Token",
    "check_bind",
    "find_token",
    "load_tokens_file",
    "parse_tokens_env",
    "tokens_from_data",
]

SCOPES = ("send", "receive", "admin")
_MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Token:
    """One bearer token: its secret value, scopes and queue-name patterns."""

    value: str
    scopes: frozenset[str]
    queues: tuple[str, ...] = ("*",)
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.value) < _MIN_TOKEN_LENGTH:
            raise ConfigurationError(
                f"token {self.label!r} is shorter than {_MIN_TOKEN_LENGTH} "
                "characters: generate one with `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`"
            )
        unknown = self.scopes - set(SCOPES)
        if unknown or not self.scopes:
            raise ConfigurationError(
                f"token {self.label!r} has scopes {sorted(self.scopes)}: "
                f"use one or more of {', '.join(SCOPES)}"
            )
        if not self.queues:
            raise ConfigurationError(f"token {self.label!r} has no queue patterns")

    @property
    def label(self) -> str:
        """A name safe to log: the configured name or the token's first characters."""
        return self.name or f"{self.value[:4]}…"

    def allows(self, scope: str | None, name: str | None) -> bool:
        """Whether this token grants ``scope`` (``None``: any) on ``name``."""
        if (
            scope is not None
            and scope not in self.scopes
            and "admin" not in self.scopes
        ):
            return False
        return name is None or self.matches(name)

    def matches(self, name: str) -> bool:
        """Whether ``name`` matches one of the token's queue patterns."""
        return any(fnmatchcase(name, pattern) for pattern in self.queues)


def find_token(tokens: Sequence[Token], presented: str) -> Token | None:
    """The token equal to ``presented``, compared in constant time."""
    found: Token | None = None
    raw = presented.encode()
    for token in tokens:
        # Compare against every token so timing does not tell which one matched.
        if hmac.compare_digest(token.value.encode(), raw):
            found = token
    return found


def _split_list(value: Any, what: str, label: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"token {label!r}: {what} must be a list of strings")
    return tuple(value)


def _token_from_mapping(entry: Mapping[str, Any], index: int) -> Token:
    value = entry.get("token")
    label = str(entry.get("name") or f"#{index + 1}")
    if not isinstance(value, str):
        raise ConfigurationError(f"token {label!r} has no 'token' string")
    scopes = _split_list(entry.get("scopes", []), "scopes", label)
    queues = _split_list(entry.get("queues", ["*"]), "queues", label)
    return Token(value, frozenset(scopes), queues, str(entry.get("name") or ""))


def tokens_from_data(data: Any) -> list[Token]:
    """Tokens from a parsed config document ``{"tokens": [ {...}, ... ]}``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("tokens"), list):
        raise ConfigurationError(
            'a tokens file holds {"tokens": [{"token": "...", "scopes": ["send"], '
            '"queues": ["orders.*"]}]} (JSON) or [[tokens]] tables (TOML)'
        )
    entries = data["tokens"]
    if not all(isinstance(e, Mapping) for e in entries):
        raise ConfigurationError("every entry of 'tokens' must be a table/object")
    return [_token_from_mapping(e, i) for i, e in enumerate(entries)]


def load_tokens_file(path: str | Path) -> list[Token]:
    """Read tokens from a ``.toml`` or ``.json`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read tokens file {p}: {exc}") from exc
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"tokens file {p} is not valid: {exc}") from exc
    return tokens_from_data(data)


def parse_tokens_env(value: str) -> list[Token]:
    """Parse ``POSTROOM_TOKENS``: ``token:scope+scope:pattern|pattern;...``."""
    tokens = []
    for i, item in enumerate(p.strip() for p in value.split(";")):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) not in (2, 3):
            raise ConfigurationError(
                f"POSTROOM_TOKENS entry #{i + 1} must be token:scopes[:patterns], "
                "e.g. s3cr3t-token-value-123:send+receive:orders.*|emails"
            )
        scopes = frozenset(s for s in parts[1].split("+") if s)
        queues = tuple(q for q in parts[2].split("|") if q) if len(parts) == 3 else ()
        tokens.append(Token(parts[0], scopes, queues or ("*",), f"#{i + 1}"))
    return tokens


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: Iterable[Token]) -> None:
    """Refuse to listen beyond loopback when no token protects the server."""
    if not list(tokens) and not _is_loopback(host):
        raise ConfigurationError(
            f"refusing to listen on {host!r} without access tokens: anyone who can "
            "reach it could read and delete messages. Configure tokens with "
            "--tokens-file or POSTROOM_TOKENS, or listen on 127.0.0.1"
        )
