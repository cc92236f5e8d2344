"""RabbitMQ test helpers: delete what a test's prefix made on the shared broker."""

from __future__ import annotations

import asyncio

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def delete_prefixes(prefixes: list[str]) -> None:
    """Delete every queue and stream the backend made under each prefix.

    AMQP cannot list queues without the management plugin, so the names come
    from the prefix's own meta stream (policies and delay buckets) plus the two
    streams themselves.
    """
    names = list(prefixes)
    prefixes.clear()
    asyncio.run(_delete(names))


async def _delete(prefixes: list[str]) -> None:
    from postroom.backends.rabbitmq import RabbitBackend

    for prefix in prefixes:
        backend = RabbitBackend(f"{BROKER}?prefix={prefix}")
        await backend.connect()
        try:
            await backend.delete_everything()
        finally:
            await backend.aclose()
