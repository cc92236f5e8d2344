"""Records a backend keeps with an expiry, beside the queues: the worker registry
(one record per worker process, replaced at each heartbeat) and the samples of
the queues' counters and depths over time (one record per time bucket, the
first writer wins). Both are optional: a backend declares them in its
:class:`~postroom.backends.base.Capabilities` (``worker_registry``,
``samples``)."""

from __future__ import annotations

from ..model.errors import NotSupported

__all__ = ["KeptRecords"]

_NO_REGISTRY = "keeps no worker registry (postroom workers, /v1/workers)"
_USE = "use sqlite, postgresql, redis or nats for it"


class KeptRecords:
    """The optional record-keeping methods of :class:`Backend`."""

    # -- worker registry -------------------------------------------------------------

    async def put_worker(self, worker_id: str, record: str, expires_ms: int) -> None:
        """Store (or replace) a worker process's record (JSON text) until
        ``expires_ms``; optional."""
        raise NotSupported(f"{type(self).__name__} {_NO_REGISTRY}: {_USE}")

    async def list_workers(self, now_ms: int) -> list[str]:
        """The records not expired at ``now_ms`` (expired ones may be dropped)."""
        raise NotSupported(f"{type(self).__name__} {_NO_REGISTRY}: {_USE}")

    async def delete_worker(self, worker_id: str) -> None:
        """Forget a worker's record (it stopped); nothing when there is none."""
        raise NotSupported(f"{type(self).__name__} {_NO_REGISTRY}")

    # -- samples over time -----------------------------------------------------------

    async def put_sample(self, bucket_ms: int, record: str, expires_ms: int) -> bool:
        """Store ``record`` (JSON text) as the sample of the time bucket that
        starts at ``bucket_ms``, until ``expires_ms``, unless that bucket has one
        already: the first writer wins (atomically), and whether it was this
        call is returned. Optional."""
        raise NotSupported(
            f"{type(self).__name__} keeps no samples over time (the dashboard's "
            f"charts): {_USE}"
        )

    async def list_samples(self, since_ms: int, now_ms: int) -> list[tuple[int, str]]:
        """``(bucket_ms, record)`` of the samples of the buckets from
        ``since_ms`` on that have not expired at ``now_ms``, oldest first
        (expired ones may be dropped)."""
        raise NotSupported(
            f"{type(self).__name__} keeps no samples over time (the dashboard's "
            f"charts): {_USE}"
        )
