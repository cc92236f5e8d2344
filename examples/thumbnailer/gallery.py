"""The gallery subscriber of ``images.resized``: ``postroom worker gallery:app``.

See :mod:`postroom.demo.gallery` for the subscriber and its index.
"""

from __future__ import annotations

from postroom.demo.gallery import app

__all__ = ["app"]
