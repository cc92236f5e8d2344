"""``/metrics``: queue depths and counters read from the backend, in Prometheus
text format.

Depths and counters come from the backend at scrape time, so they count the work
of every process (workers included). The handler duration histogram covers the
deliveries acked, retried or rejected through this server's HTTP API: the time
from ``receive`` to the outcome, by queue and outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .._client import AsyncClient
from .._message import QueueStats
from ..backends.base import COUNTERS

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STATES = ("ready", "delayed", "in_flight", "dead")
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _Snapshot(Collector):
    """Yields the families of the last snapshot taken from the backend."""

    def __init__(self) -> None:
        self.stats: list[QueueStats] = []
        self.counters: dict[str, dict[str, int]] = {}

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "postroom_queue_depth",
            "Messages in a queue by state",
            labels=["queue", "state"],
        )
        age = GaugeMetricFamily(
            "postroom_queue_oldest_age_seconds",
            "Age of the oldest message in a queue (0 when empty)",
            labels=["queue"],
        )
        for s in self.stats:
            for state in _STATES:
                depth.add_metric([s.queue, state], getattr(s, state))
            age.add_metric([s.queue], s.oldest_age or 0.0)
        yield depth
        yield age
        for name in COUNTERS:
            fam = CounterMetricFamily(
                f"postroom_messages_{name}",
                f"Messages {name.replace('_', ' ')}, over every process",
                labels=["queue"],
            )
            for queue, values in self.counters.items():
                fam.add_metric([queue], values.get(name, 0))
            yield fam


class Metrics:
    """The server's Prometheus registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self.handler_duration = Histogram(
            "postroom_handler_duration_seconds",
            "Seconds from receive to ack/retry/reject of HTTP consumers",
            labelnames=["queue", "outcome"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe_handler(self, queue: str, outcome: str, seconds: float) -> None:
        """Record how long an HTTP consumer held a message before its outcome."""
        self.handler_duration.labels(queue=queue, outcome=outcome).observe(seconds)

    async def render(self, client: AsyncClient) -> bytes:
        """Read depths and counters from the backend; the text exposition."""
        backend = client.backend
        names = await backend.list_queues()
        stats = await backend.stats(names) if names else []
        counters = await backend.counters(names) if names else {}
        self._snapshot.stats, self._snapshot.counters = stats, counters
        data: Any = generate_latest(self.registry)
        return bytes(data)
