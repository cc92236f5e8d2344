"""The gallery: a subscriber of ``images.resized`` that keeps an index of thumbnails.

Run it on its own with ``postroom worker postroom.demo.gallery:app`` (the backend
from ``POSTROOM_URL``, the data folder from ``THUMBNAILER_DIR``); add ``--push`` to
let the same process deliver the ``webhook`` push subscription to the service. The
index is a SQLite database in the data folder, written with upserts so that a
redelivered event (at-least-once) changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from ..runtime.app import App
from ._common import GALLERY_SUBSCRIPTION, RESIZED_TOPIC, DataDir, Resized

__all__ = ["GalleryIndex", "app", "index_resized"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery (
    image TEXT PRIMARY KEY,
    thumbnails TEXT NOT NULL,
    watermark INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL,
    resized_at INTEGER NOT NULL,
    indexed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    image TEXT PRIMARY KEY,
    event_id TEXT NOT NULL,
    notified_at INTEGER NOT NULL
);
"""


class GalleryIndex:
    """The gallery table: one row per image whose thumbnails are ready."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        return conn

    def add(self, event: Resized, indexed_at: int | None = None) -> None:
        """Record (or refresh) the thumbnails of one image."""
        at = indexed_at if indexed_at is not None else int(time.time() * 1000)
        row = (
            event.image,
            json.dumps({str(k): v for k, v in event.thumbnails.items()}),
            int(event.watermark),
            event.uploaded_at,
            event.resized_at,
            at,
        )
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO gallery VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(image) DO "
                "UPDATE SET thumbnails = excluded.thumbnails, watermark = "
                "excluded.watermark, resized_at = excluded.resized_at",
                row,
            )

    def notify(self, image: str, event_id: str) -> None:
        """Record that the webhook announced ``image`` (a repeat changes nothing)."""
        at = int(time.time() * 1000)
        with closing(self._connect()) as conn, conn:
            conn.execute(
                "INSERT INTO notifications VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (image, event_id, at),
            )

    def notified(self, image: str) -> bool:
        """Whether the webhook announced ``image``."""
        if not self.path.exists():
            return False
        with closing(self._connect()) as conn:
            sql = "SELECT 1 FROM notifications WHERE image = ?"
            return conn.execute(sql, (image,)).fetchone() is not None

    def notified_count(self) -> int:
        """How many images the webhook announced."""
        return self._count("notifications")

    def get(self, image: str) -> dict[str, Any] | None:
        """The entry of one image, or ``None``."""
        rows = self._select("WHERE image = ?", (image,))
        return rows[0] if rows else None

    def all(self) -> list[dict[str, Any]]:
        """Every entry, oldest upload first."""
        return self._select("", ())

    def count(self) -> int:
        """How many images the gallery holds."""
        return self._count("gallery")

    def _count(self, table: str) -> int:
        if not self.path.exists():
            return 0
        with closing(self._connect()) as conn:
            (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(n)

    def _select(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        sql = (
            "SELECT image, thumbnails, watermark, uploaded_at, resized_at, indexed_at "
            f"FROM gallery {where} ORDER BY uploaded_at, image"
        )
        with closing(self._connect()) as conn:
            rows = conn.execute(sql, args).fetchall()
        return [
            {
                "image": r[0],
                "thumbnails": json.loads(r[1]),
                "watermark": bool(r[2]),
                "uploaded_at": r[3],
                "resized_at": r[4],
                "indexed_at": r[5],
            }
            for r in rows
        ]


app = App()


@app.subscriber(RESIZED_TOPIC, subscription=GALLERY_SUBSCRIPTION, concurrency=2)
def index_resized(event: Resized) -> None:
    """Add the resized image to the gallery index."""
    GalleryIndex(DataDir.from_env().gallery_db).add(event)
