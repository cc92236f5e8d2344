"""Where a ready copy is stored: priority 0 on the queue's stream (Q), priorities
1 to 9 on its priority stream (P, one subject and consumer per priority), and
every copy that is not due yet on the delay stream (W).

The priority stream is made when a queue gets its first message of priority
above 0, and the queue's policy record says so from then on (``"p": true``): a
claim of a queue whose record does not say so pulls from Q alone, as before.
"""

from __future__ import annotations

from ...model.errors import QueueNotFound
from ...model.message import now_ms
from ._core import NatsCore
from ._records import Meta, message_headers

__all__ = ["Lanes"]


class Lanes(NatsCore):
    """Storing copies of messages in their lane."""

    def lane(self, queue: str, meta: Meta) -> tuple[str, str]:
        """The stream and subject of a ready copy of ``meta``."""
        n = self.names
        if meta.priority:
            return n.prio_stream(queue), n.prio_subject(queue, meta.priority)
        return n.stream(queue), n.subject(queue, meta.id)

    async def store(
        self, queue: str, meta: Meta, body: bytes, msg_id: str, at_once: bool = False
    ) -> bool:
        """Store one copy: on the delay stream while it is not due, else ready in
        its lane (``at_once``: a lone publish, written to the socket at once).

        Whether it was new: a copy whose ``msg_id`` the stream saw within its
        duplicate window (two minutes) is not stored again."""
        n = self.names
        if meta.priority and not self.lanes.get(queue):
            await self.open_lanes(queue)
        if meta.available_ms > now_ms():
            stream, subject = n.delay_stream(queue), n.delay_subject(queue, meta.id)
        else:
            stream, subject = self.lane(queue, meta)
        ack = await self.jet.publish(
            subject,
            body,
            message_headers(meta, msg_id),
            stream=stream,
            queue=queue,
            at_once=at_once,
        )
        return not ack.duplicate

    async def open_lanes(self, queue: str) -> None:
        """Make the priority stream of ``queue`` and mark its policy record."""
        policy = await self.get_policy(queue)  # fresh: another process may have
        if policy is None:
            raise QueueNotFound(queue)
        if self.lanes.get(queue):
            return
        await self.create_lanes(queue, policy)
        key = self.policy_key(queue)
        while True:
            got = await self.meta.get(key)
            if got is None:
                raise QueueNotFound(queue)
            record, revision = got
            if record.get("p") or await self.meta.cas(
                key, {**record, "p": True}, revision
            ):
                break
        self.lanes[queue] = True
