"""The thumbnail pipeline of ``postroom demo``: an example of postroom end to end.

Four parts, each runnable on its own against any backend URL (``POSTROOM_URL``),
sharing one data folder (``THUMBNAILER_DIR``):

- :mod:`postroom.demo.service`: the HTTP API. ``POST /images`` stores an upload and
  enqueues a resize job on ``images.resize`` (202 with the message id);
  ``GET /images/{image}`` answers its status and thumbnails; ``POST /hooks/resized``
  receives the ``webhook`` push subscription of ``images.resized`` (signed).
- :mod:`postroom.demo.worker`: ``app``, the worker that resizes each image with
  Pillow into several sizes and publishes ``images.resized``
  (``postroom worker postroom.demo.worker:app``).
- :mod:`postroom.demo.gallery`: ``app``, the subscriber of ``images.resized`` that
  keeps the gallery index (``postroom worker postroom.demo.gallery:app``; with
  ``--push`` the process also delivers the webhook).
- :mod:`postroom.demo.runner`: what ``postroom demo`` runs: all of the above in a
  temporary folder on SQLite, with generated uploads, failures and a redrive.

It needs the ``demo`` extra: ``pip install 'postroom[demo]'``.
"""

from __future__ import annotations

from ._common import (
    GALLERY_SUBSCRIPTION,
    RESIZE_QUEUE,
    RESIZED_TOPIC,
    SIZES,
    DataDir,
    Resized,
    ResizeJob,
    declare,
)

__all__ = [
    "GALLERY_SUBSCRIPTION",
    "RESIZED_TOPIC",
    "RESIZE_QUEUE",
    "SIZES",
    "DataDir",
    "ResizeJob",
    "Resized",
    "declare",
]
