"""Time-ordered unique message ids (ULID layout, Crockford base32)."""

from __future__ import annotations

import os
import threading
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of digits, by the 10 bits they stand for: 13 look-ups make an id.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_RAND_BITS = 80
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _encode(ms: int, rand: int) -> str:
    """The 26 digits of a 48-bit time (10 digits, the first two bits 0) and of
    80 random bits (16 digits)."""
    p = _PAIRS
    return "".join(
        (
            p[ms >> 40 & 1023],
            p[ms >> 30 & 1023],
            p[ms >> 20 & 1023],
            p[ms >> 10 & 1023],
            p[ms & 1023],
            p[rand >> 70 & 1023],
            p[rand >> 60 & 1023],
            p[rand >> 50 & 1023],
            p[rand >> 40 & 1023],
            p[rand >> 30 & 1023],
            p[rand >> 20 & 1023],
            p[rand >> 10 & 1023],
            p[rand & 1023],
        )
    )


def new_id() -> str:
    """A 26-character id that sorts in creation order, even within a millisecond."""
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms, _last_rand = ms, rand
    return _encode(ms, rand & ((1 << _RAND_BITS) - 1))
