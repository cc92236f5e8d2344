"""A RabbitMQ lane's acks reach the broker in an order it accepts.

The broker refuses an ack of a tag it no longer holds ("unknown delivery tag")
and closes the channel. aiormq's write queue holds ten frames: an ack batch
waiting for room there must not be overtaken by a later batch whose multiple
ack takes the tag it is about to ack alone. The channel here keeps the broker's
books of unacknowledged tags, and holds the first frame back as a full write
queue would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from postroom.backends.rabbitmq._lanes import Lane


class _Channel:
    """The broker's side of ``basic.ack`` on one channel: what it holds."""

    def __init__(self, held: set[int]) -> None:
        self.held = set(held)
        self.refused: list[int] = []
        self.frames: list[tuple[int, bool]] = []
        self.hold_first = 5  # event-loop turns the first frame waits for room
        self.is_closed = False
        self.closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.on_consumer_cancel_callbacks: set[Any] = set()

    async def basic_ack(
        self, tag: int, multiple: bool = False, wait: bool = True
    ) -> None:
        turns, self.hold_first = self.hold_first, 0
        for _ in range(turns):
            await asyncio.sleep(0)
        self.frames.append((tag, multiple))
        if tag not in self.held:
            self.refused.append(tag)
            return
        self.held -= {t for t in self.held if t <= tag} if multiple else {tag}


async def _overtaking() -> _Channel:
    channel = _Channel({1, 2, 3, 4})
    lane = Lane(channel, "q", lambda _: None)  # type: ignore[arg-type]
    lane._unacked = {1, 2, 3, 4}
    await lane.ack([3])  # waits for 1 and 2
    alone = asyncio.create_task(lane.flush())  # tag 3 alone, held back
    await asyncio.sleep(0)
    await lane.ack([1, 2, 4])  # every tag below 4 free: one multiple ack
    await alone
    return channel


def test_a_later_multiple_ack_never_overtakes_a_tag_sent_alone() -> None:
    channel = asyncio.run(_overtaking())
    assert channel.refused == [], channel.frames
    assert channel.held == set()
    assert channel.frames == [(3, False), (4, True)]
