"""The numbers of a demo run: progress snapshots and the final summary (pure)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..model.message import DeadLetter

__all__ = [
    "Phase",
    "Reporter",
    "Snapshot",
    "Summary",
    "Upload",
    "percentile",
]

Phase = Literal[
    "start", "upload", "process", "dead_letters", "fix", "redrive", "done", "stop"
]
UploadKind = Literal["ok", "corrupt", "watermark"]


@dataclass(frozen=True, slots=True)
class Upload:
    """One image the demo uploaded, and how it was built to end."""

    index: int
    kind: UploadKind
    image: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where the pipeline is, from the backend's own counts and the gallery."""

    jobs: int  # uploads sent plus malformed jobs
    uploaded: int
    ready: int
    delayed: int
    in_flight: int
    dead: int
    acked: int
    retried: int
    gallery: int
    webhooks: int
    events_pending: int

    @property
    def settled(self) -> bool:
        """Every job ended (processed or dead) and every event reached the gallery
        and the webhook."""
        idle = self.ready + self.delayed + self.in_flight + self.events_pending == 0
        return (
            idle
            and self.acked + self.dead >= self.jobs
            and self.gallery >= self.acked
            and self.webhooks >= self.acked
        )


class Reporter(Protocol):
    """What the demo tells its user about; the CLI draws it."""

    def phase(self, phase: Phase, detail: str) -> None:
        """A new step begins."""

    def progress(self, snapshot: Snapshot) -> None:
        """The counts changed (called a few times a second)."""

    def dead_letters(self, letters: list[DeadLetter]) -> None:
        """The dead letters after the first pass."""


def percentile(values: list[float], pct: float) -> float | None:
    """The nearest-rank ``pct`` percentile of ``values`` (``None`` when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Summary:
    """What the demo did, with numbers read back from the backend."""

    folder: str
    url: str
    workers: int
    uploads: Counter[str] = field(default_factory=Counter)
    malformed_jobs: int = 0
    processed: int = 0
    processed_first_pass: int = 0
    retried: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    redriven: int = 0
    redriven_processed: int = 0
    dead_at_end: Counter[str] = field(default_factory=Counter)
    gallery: int = 0
    webhooks: int = 0
    first_pass_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    service_url: str = ""
    processes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Images processed per second in the first pass (upload to gallery)."""
        if self.first_pass_seconds <= 0:
            return 0.0
        return self.processed_first_pass / self.first_pass_seconds

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what ``postroom demo --json`` prints)."""
        p50 = percentile(self.latencies_ms, 50)
        p99 = percentile(self.latencies_ms, 99)
        return {
            "dir": self.folder,
            "url": self.url,
            "workers": self.workers,
            "uploaded": sum(self.uploads.values()),
            "uploads": dict(sorted(self.uploads.items())),
            "malformed_jobs": self.malformed_jobs,
            "processed": self.processed,
            "processed_first_pass": self.processed_first_pass,
            "retried": self.retried,
            "dead_lettered": dict(sorted(self.dead_lettered.items())),
            "redriven": self.redriven,
            "redriven_processed": self.redriven_processed,
            "dead_at_end": dict(sorted(self.dead_at_end.items())),
            "gallery": self.gallery,
            "webhooks": self.webhooks,
            "throughput_per_second": round(self.throughput, 1),
            "latency_ms": {
                "p50": round(p50, 1) if p50 is not None else None,
                "p99": round(p99, 1) if p99 is not None else None,
            },
            "first_pass_seconds": round(self.first_pass_seconds, 2),
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "processes": list(self.processes),
        }
