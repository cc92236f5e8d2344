"""Token configuration and checks (pure, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from postroom import ConfigurationError
from postroom.server import Token, check_bind, load_tokens_file, parse_tokens_env
from postroom.server._auth import find_token

T = "tok-0123456789abcdef"


def test_parse_tokens_env_scopes_and_patterns() -> None:
    [a, b] = parse_tokens_env(f" {T}:send+receive:orders.*|emails ; {T}x:admin ;")
    assert a.scopes == {"send", "receive"}
    assert a.queues == ("orders.*", "emails")
    assert b.queues == ("*",)
    assert a.allows("send", "orders.eu") and a.allows("receive", "emails")
    assert not a.allows("admin", "orders.eu")
    assert not a.allows("send", "emails.bulk")
    assert b.allows("receive", "anything")  # admin implies every scope


@pytest.mark.parametrize(
    "value",
    [f"{T}", f"{T}:fly", "short:send", f"{T}:send:a:b", f"{T}:"],
)
def test_parse_tokens_env_rejects_bad_entries(value: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_tokens_env(value)


def test_load_tokens_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "tokens.toml"
    toml.write_text(
        f'[[tokens]]\nname = "billing"\ntoken = "{T}"\nscopes = ["send"]\n'
        'queues = ["billing.*"]\n'
    )
    [t] = load_tokens_file(toml)
    assert (t.name, t.scopes, t.queues) == ("billing", {"send"}, ("billing.*",))
    js = tmp_path / "tokens.json"
    js.write_text(json.dumps({"tokens": [{"token": T, "scopes": ["admin"]}]}))
    [j] = load_tokens_file(js)
    assert j.queues == ("*",)
    js.write_text(json.dumps({"tokens": [{"token": T, "scopes": "send", "queues": 3}]}))
    with pytest.raises(ConfigurationError, match="queues must be a list"):
        load_tokens_file(js)
    js.write_text("{")
    with pytest.raises(ConfigurationError, match="not valid"):
        load_tokens_file(js)
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_tokens_file(tmp_path / "missing.toml")


def test_find_token_matches_exactly() -> None:
    tokens = [Token(T, frozenset({"send"})), Token(T + "2", frozenset({"admin"}))]
    assert find_token(tokens, T) is tokens[0]
    assert find_token(tokens, T + "2") is tokens[1]
    assert find_token(tokens, T[:-1]) is None
    assert find_token(tokens, "") is None


def test_check_bind_needs_tokens_beyond_loopback() -> None:
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        check_bind(host, [])
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ConfigurationError, match="without access tokens"):
            check_bind(host, [])
    check_bind("0.0.0.0", [Token(T, frozenset({"send"}))])
