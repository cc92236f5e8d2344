"""``/metrics``: queue depths and counters read from the backend, in Prometheus
text format.

Depths, counters and the handler duration histogram come from the backend at
scrape time, so they count the work of every process: ``postroom worker``
processes record how long each handler ran (see :mod:`postroom.runtime.durations`), and
this server records, for consumers working over its HTTP API, the time from
``receive`` to ``ack``/``retry``/``reject`` the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..client.core import AsyncClient
from ..model.errors import NotSupported
from ..model.message import QueueStats
from ..model.stats import COUNTERS, DURATION_LABELS, DurationHistogram
from ..runtime.durations import DurationRecorder

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STATES = ("ready", "delayed", "in_flight", "dead")


class _Snapshot(Collector):
    """Yields the families of the last snapshot taken from the backend."""

    def __init__(self) -> None:
        self.stats: list[QueueStats] = []
        self.counters: dict[str, dict[str, int]] = {}
        self.durations: dict[str, DurationHistogram] = {}

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
        yield self._durations()

    def _durations(self) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(
            "postroom_handler_duration_seconds",
            "Seconds a handler ran (workers) or held a message from receive to its "
            "outcome (HTTP consumers), over every process",
            labels=["queue"],
        )
        for queue, h in self.durations.items():
            buckets = list(zip(DURATION_LABELS, h.buckets, strict=True))
            fam.add_metric([queue], buckets, sum_value=h.sum_seconds)
        return fam


class Metrics:
    """The server's Prometheus registry and its HTTP consumers' durations."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._snapshot = _Snapshot()
        self.registry.register(self._snapshot)
        self.recorder = DurationRecorder()

    def observe_handler(self, queue: str, seconds: float) -> None:
        """Record how long an HTTP consumer held a message before its outcome
        (ack, retry or reject); sent to the backend with the next flush."""
        self.recorder.observe(queue, seconds)

    async def render(
        self, client: AsyncClient, visible: Callable[[str], bool] | None = None
    ) -> bytes:
        """Read depths, counters and durations from the backend; the text
        exposition of the queues ``visible`` accepts (default: all)."""
        await self.recorder.flush(client)  # this server's own, up to now
        names = await client.queues()
        if visible is not None:
            names = [n for n in names if visible(n)]
        counters = await client.counters(names)  # first, as in the API's reads
        stats = await client.queue_stats(names)
        self._snapshot.stats, self._snapshot.counters = stats, counters
        self._snapshot.durations = await _durations(client, names)
        data: Any = generate_latest(self.registry)
        return bytes(data)


async def _durations(
    client: AsyncClient, names: list[str]
) -> dict[str, DurationHistogram]:
    """The backend's duration histograms; none from a backend that keeps none."""
    try:
        return await client.durations(names)
    except NotSupported:
        return {}
