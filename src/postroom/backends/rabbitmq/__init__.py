"""``amqp://`` / ``amqps://``: the RabbitMQ (>= 3.10) backend.

See ``docs/backends/rabbitmq.md`` for what is native, what is emulated and the
limits.
"""

from __future__ import annotations

from ._backend import RabbitBackend
from ._names import RabbitSettings

__all__ = ["RabbitBackend", "RabbitSettings"]
