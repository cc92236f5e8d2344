"""The resize worker: thumbnails of each upload, then an ``images.resized`` event.

Run it with ``postroom worker postroom.demo.worker:app --processes 2`` (the backend
from ``POSTROOM_URL``, the data folder from ``THUMBNAILER_DIR``).

Outcomes, as postroom sees them:

- an image Pillow cannot decode is rejected (:class:`postroom.Reject`): no retry can
  help, so it goes straight to the dead letter queue with reason ``rejected``;
- a watermarked job while the watermark asset is missing raises
  :class:`MissingAsset`: a failed attempt, retried with the queue's backoff, and a
  dead letter with reason ``failed`` once its attempts are used up. Put the asset in
  place and redrive: the jobs then succeed;
- a body that is not a valid :class:`ResizeJob` never reaches the handler: postroom
  dead-letters it with reason ``undecodable``.
"""

from __future__ import annotations

import time

import anyio

from ..client.core import AsyncClient
from ..model.errors import Reject
from ..runtime.app import App
from ._common import RESIZE_QUEUE, RESIZED_TOPIC, DataDir, Resized, ResizeJob
from .images import UndecodableImage, make_thumbnails

__all__ = ["MissingAsset", "app", "resize", "resize_files"]


class MissingAsset(Exception):
    """An asset the job needs is missing; the job succeeds once it is in place."""


app = App()


class _Publisher:
    """One client per worker process, opened on first use in the worker's loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: AsyncClient | None = None

    async def publish(self, topic: str, event: Resized) -> str:
        if self._client is None:
            self._client = AsyncClient(self.url)
        return await self._client.publish(topic, event)


_publisher = _Publisher(app.url)


def resize_files(job: ResizeJob, data: DataDir) -> Resized:
    """Write the thumbnails of ``job``'s image; return the event announcing them."""
    original = (data.uploads / job.filename).read_bytes()
    mark = None
    if job.watermark:
        if not data.watermark.exists():
            where = data.watermark.relative_to(data.root)
            raise MissingAsset(
                f"watermark asset {where} is missing (add it, then redrive the "
                f"dead letters of {RESIZE_QUEUE})"
            )
        mark = data.watermark.read_bytes()
    try:
        thumbs = make_thumbnails(original, job.sizes, mark)
    except UndecodableImage as exc:
        raise Reject(str(exc)) from exc
    folder = data.thumbnails / job.image
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[int, str] = {}
    for size, jpeg in thumbs.items():
        path = folder / f"{size}.jpg"
        path.write_bytes(jpeg)
        paths[size] = str(path.relative_to(data.root))
    return Resized(
        image=job.image,
        thumbnails=dict(sorted(paths.items())),
        watermark=job.watermark,
        uploaded_at=job.uploaded_at,
        resized_at=int(time.time() * 1000),
    )


@app.handler(RESIZE_QUEUE, concurrency=2, timeout=60.0)
async def resize(job: ResizeJob) -> None:
    """Resize one uploaded image into every size of the job, then announce it."""
    data = DataDir.from_env()
    # Pillow releases the GIL while it works: a thread keeps the loop (and the
    # lease renewal) responsive.
    event = await anyio.to_thread.run_sync(resize_files, job, data)
    await _publisher.publish(RESIZED_TOPIC, event)
