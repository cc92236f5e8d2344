"""The sync send's poll for its reply before it sleeps (``_direct.Spin``)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator

import hiredis
import pytest
import redis.exceptions

from postroom.backends.redis import _direct


class Parser:
    """What Spin.read uses of redis-py's hiredis parser."""

    def __init__(self) -> None:
        self._buffer = bytearray(65536)
        self._reader = hiredis.Reader()


@pytest.fixture(params=[None, 5.0], ids=["blocking", "timeout"])
def pair(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.settimeout(request.param)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_a_reply_already_there_is_read_without_blocking(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    spin, parser = _direct.Spin(), Parser()
    theirs.sendall(b"+OK\r\n:7\r\n")
    assert spin.read(ours, parser)
    assert spin.skip == 0
    assert parser._reader.gets() == b"OK"
    assert parser._reader.gets() == 7


def test_a_missed_spin_makes_the_next_sends_block_at_once(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    spin, parser = _direct.Spin(), Parser()
    started = time.perf_counter()
    assert not spin.read(ours, parser)
    assert time.perf_counter() - started >= _direct.SPIN_SECONDS
    assert spin.skip == _direct.SPIN_SKIP
    theirs.sendall(b"+OK\r\n")  # there now, but the skipped sends do not look
    for left in range(_direct.SPIN_SKIP - 1, -1, -1):
        assert not spin.read(ours, parser)
        assert spin.skip == left
    assert spin.read(ours, parser)
    assert parser._reader.gets() == b"OK"


def test_a_closed_connection_is_a_connection_error(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    theirs.close()
    with pytest.raises(redis.exceptions.ConnectionError):
        _direct.Spin().read(ours, Parser())


def test_a_tls_socket_is_never_read_around_its_tls() -> None:
    ours, theirs = socket.socketpair()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    wrapped = context.wrap_socket(ours, do_handshake_on_connect=False)
    try:
        theirs.sendall(b"+OK\r\n")
        spin = _direct.Spin()
        assert not spin.read(wrapped, Parser())
        assert spin.skip == 0  # not a miss: TLS sockets just block
    finally:
        wrapped.close()
        theirs.close()
