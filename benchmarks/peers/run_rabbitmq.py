"""postroom on RabbitMQ beside Dramatiq and Celery on the same broker.

``run.py``'s workloads, modes (defaults and tuned) and tables, with the broker on
the RabbitMQ of 127.0.0.1:5672 (the jobs' ``INCR`` stays on Redis, databases 13 to
15, as ``run.py`` does). Install the peers (not part of CI)::

    python -m venv /tmp/peers-amqp && /tmp/peers-amqp/bin/pip install \\
        -e '.[rabbitmq,redis]' 'dramatiq[rabbitmq]>=1.17' 'celery>=5.4'
    /tmp/peers-amqp/bin/python benchmarks/peers/run_rabbitmq.py [--quick]

Every queue a system made on RabbitMQ is emptied before each workload. The
"commands per message" column counts Redis commands only (the jobs' own), as
RabbitMQ has no count of AMQP methods without the management plugin; postroom's
round trips per message come from ``roundtrips.py rabbitmq``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aio_pika

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
POSTROOM_URL = f"{AMQP}?prefix=bench"
run.SYSTEMS = {
    "postroom": ("bench_postroom", 13, POSTROOM_URL),
    "dramatiq": ("bench_dramatiq_amqp", 14, AMQP),
    "celery": ("bench_celery_amqp", 15, AMQP),
}


class RabbitBench(run.Bench):
    """``run.Bench`` that also empties the system's RabbitMQ queues."""

    def __init__(self, name: str, sizes: dict[str, int], tuned: bool) -> None:
        super().__init__(name, sizes, tuned)
        self.sqlite = False  # the URL names RabbitMQ, not a SQLite file

    def flush(self) -> None:
        super().flush()
        asyncio.run(self._delete_queues())

    async def _delete_queues(self) -> None:
        if self.mod.__name__ == "bench_postroom":
            from postroom.backends.rabbitmq import RabbitBackend

            backend = RabbitBackend(POSTROOM_URL)
            await backend.connect()
            try:
                await backend.delete_everything()
            finally:
                await backend.aclose()
            return
        # Purged, not deleted: the peer's producer remembers the queues it
        # declared and would publish a warm-up job into the void.
        conn = await aio_pika.connect(AMQP)
        async with conn:
            for name in self.mod.queues():
                channel = await conn.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                    await queue.purge()
                except aio_pika.exceptions.ChannelClosed:
                    pass  # not made yet
                finally:
                    if not channel.is_closed:
                        await channel.close()


run.Bench = RabbitBench  # type: ignore[misc]

if __name__ == "__main__":
    run.main()
