"""The public surface is exactly what is documented, and sync mirrors async."""

from __future__ import annotations

import inspect

import pytest

import postroom
from postroom import AsyncClient, Client


def test_exports_are_sorted_and_importable() -> None:
    names = [n for n in postroom.__all__ if n != "__version__"]
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    for name in postroom.__all__:
        assert hasattr(postroom, name), name


def test_errors_form_one_tree() -> None:
    for name in (
        "BackendError",
        "ConfigurationError",
        "DecodeError",
        "LeaseLost",
        "NotSupported",
        "QueueNotFound",
        "Reject",
        "Retry",
        "SerializationError",
    ):
        assert issubclass(getattr(postroom, name), postroom.PostroomError), name


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_every_async_method_has_a_sync_twin_with_the_same_signature() -> None:
    async_methods = _public(AsyncClient)
    sync_methods = _public(Client)
    lifecycle = {"connect", "aclose"}
    for name, sig in async_methods.items():
        if name in lifecycle:
            continue
        assert name in sync_methods, f"Client lacks {name}"
        assert str(sync_methods[name]) == str(sig), name
    assert "close" in sync_methods


def test_unknown_scheme_names_the_supported_ones() -> None:
    with pytest.raises(postroom.ConfigurationError, match="sqlite://"):
        postroom.open_backend("kafka://localhost")
    with pytest.raises(postroom.ConfigurationError, match="not a postroom URL"):
        postroom.open_backend("just-a-path.db")


def test_connect_defaults_to_env_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTROOM_URL", "memory://env-test")
    with postroom.connect() as c:
        assert c.url == "memory://env-test"
    monkeypatch.delenv("POSTROOM_URL")
    assert postroom.connect_async().url == "sqlite:///postroom.db"


def test_every_backend_of_the_spec_opens() -> None:
    assert type(postroom.open_backend("nats://localhost:4222")).__name__ == (
        "NatsBackend"
    )


def test_amqp_urls_open_the_rabbitmq_backend() -> None:
    from postroom.backends.rabbitmq import RabbitBackend

    for url in ("amqp://guest:guest@localhost/", "amqps://u:p@host:5671/vh"):
        assert isinstance(postroom.open_backend(url), RabbitBackend)
