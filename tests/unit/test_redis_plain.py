"""The plain sync send on Redis, packed once per queue: the bytes it sends are
those of :func:`plain_commands`, whatever the queue, prefix, body and headers."""

from __future__ import annotations

import pytest

hiredis = pytest.importorskip("hiredis")

from postroom.backends.redis import RedisBackend  # noqa: E402
from postroom.backends.redis._plain import PackedPlain, plain_commands  # noqa: E402
from postroom.model.codec import build_message  # noqa: E402


@pytest.mark.parametrize("trim", [False, True])
@pytest.mark.parametrize("queue", ["jobs", "q%s%b%%", "ünï €:{x}"])
def test_packed_plain_send_is_plain_commands_packed(queue: str, trim: bool) -> None:
    backend = RedisBackend("redis://127.0.0.1:6379/0?prefix=p%25d")
    packed = PackedPlain(backend.key, queue, trim=trim)
    for body, delay, headers in [
        ({"t": "é%s"}, 0, None),
        (b"\r\n%b\x00", 1500, {"a%": "b\r\n", "traceparent": "00-x"}),
    ]:
        m = build_message(queue, body, now=1_700_000_000_123, delay_ms=delay)
        m2 = build_message(queue, body, now=1_700_000_000_123, headers=headers)
        for msg in (m, m2):
            commands = plain_commands(backend.key, queue, msg, trim=trim)
            want = b"".join(hiredis.pack_command(c) for c in commands)
            assert packed.packed(msg) == want
            assert packed.count == len(commands)


def test_payload_meta_is_compact_json() -> None:
    """The payload's meta is what ``json.dumps`` makes (compact, ASCII), with the
    C encoder kept across calls or without it."""
    import json

    from postroom.backends.redis._records import _ENCODE_META, decode_message
    from postroom.backends.redis._records import encode_message as encode

    headers = {"content-type": "application/json", 'x\u2028"é': "\\\x00\ud7ff"}
    meta = {"h": headers, "e": 1, "a": 2, "k": "k\n\u0000", "r": 3, "g": "g", "p": 9}
    assert _ENCODE_META(meta) == json.dumps(meta, separators=(",", ":"))
    m = build_message("q", b"\n{}", now=5, headers=headers, dedup_key="k", group="g")
    assert decode_message(m.id, "q", encode(m), 0) == m
    with pytest.raises(TypeError):
        _ENCODE_META({"h": {"x": object()}})
