"""What every part of the thumbnail pipeline shares: names, messages, folders."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pydantic

from ..client.core import AsyncClient
from ..model.retry import Backoff

__all__ = [
    "DATA_DIR_ENV",
    "GALLERY_SUBSCRIPTION",
    "RESIZED_TOPIC",
    "RESIZE_BACKOFF",
    "RESIZE_MAX_ATTEMPTS",
    "RESIZE_QUEUE",
    "SIZES",
    "WEBHOOK_PATH",
    "WEBHOOK_SUBSCRIPTION",
    "DataDir",
    "ResizeJob",
    "Resized",
    "declare",
]

RESIZE_QUEUE = "images.resize"
RESIZED_TOPIC = "images.resized"
GALLERY_SUBSCRIPTION = "gallery"
WEBHOOK_SUBSCRIPTION = "webhook"
WEBHOOK_PATH = "/hooks/resized"
SIZES = (64, 128, 256)
# Failures that a fix can cure (a missing asset) should reach the dead letter queue
# in about a second, so that the demo can show them being fixed and redriven.
RESIZE_MAX_ATTEMPTS = 3
RESIZE_BACKOFF = Backoff(initial=0.2, factor=2.0, max=1.0, jitter=True)
DATA_DIR_ENV = "THUMBNAILER_DIR"

_IMAGE_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


class ResizeJob(pydantic.BaseModel):
    """The body of a message on ``images.resize``."""

    image: str = pydantic.Field(pattern=_IMAGE_ID.pattern)
    filename: str
    sizes: list[int] = pydantic.Field(default_factory=lambda: list(SIZES))
    watermark: bool = False
    uploaded_at: int  # ms since the epoch, for end-to-end latency


class Resized(pydantic.BaseModel):
    """The body of an ``images.resized`` event."""

    image: str = pydantic.Field(pattern=_IMAGE_ID.pattern)
    thumbnails: dict[int, str]  # size -> path relative to the data folder
    watermark: bool
    uploaded_at: int
    resized_at: int


def valid_image_id(image: str) -> bool:
    """Whether ``image`` is a well-formed image id (safe as a file name)."""
    return bool(_IMAGE_ID.match(image))


@dataclass(frozen=True, slots=True)
class DataDir:
    """The folder the service and the workers share: uploads, thumbnails, assets."""

    root: Path

    @classmethod
    def from_env(cls) -> DataDir:
        """``$THUMBNAILER_DIR``, else ``./thumbnailer-data``; created if missing."""
        root = Path(os.environ.get(DATA_DIR_ENV) or "thumbnailer-data").resolve()
        data = cls(root)
        data.create()
        return data

    def create(self) -> None:
        """Create the sub-folders (idempotent)."""
        for path in (self.uploads, self.thumbnails, self.assets):
            path.mkdir(parents=True, exist_ok=True)

    @property
    def uploads(self) -> Path:
        """Uploaded originals, with one ``<image>.json`` record each."""
        return self.root / "uploads"

    @property
    def thumbnails(self) -> Path:
        """``thumbnails/<image>/<size>.jpg``."""
        return self.root / "thumbnails"

    @property
    def assets(self) -> Path:
        """Shared assets of the workers (the watermark)."""
        return self.root / "assets"

    @property
    def watermark(self) -> Path:
        """The watermark that watermarked jobs need."""
        return self.assets / "watermark.png"

    @property
    def gallery_db(self) -> Path:
        """The gallery index (SQLite) kept by the subscriber."""
        return self.root / "gallery.db"

    def upload_record(self, image: str) -> Path:
        """The JSON record of one upload."""
        return self.uploads / f"{image}.json"


async def declare(client: AsyncClient, *, webhook_url: str | None = None) -> None:
    """Declare the resize queue and the subscriptions of ``images.resized``
    (idempotent): ``gallery`` (in-process) and, with ``webhook_url``, ``webhook``
    (HTTP push to the service's ``/hooks/resized``).

    Run by the service at start and by ``postroom demo``, so that no event is
    published before its subscriptions exist.
    """
    await client.declare_queue(
        RESIZE_QUEUE,
        max_attempts=RESIZE_MAX_ATTEMPTS,
        visibility_timeout=30.0,
        backoff=RESIZE_BACKOFF,
    )
    await client.create_subscription(RESIZED_TOPIC, GALLERY_SUBSCRIPTION)
    if webhook_url is not None:
        await client.create_subscription(
            RESIZED_TOPIC, WEBHOOK_SUBSCRIPTION, push_endpoint=webhook_url
        )
