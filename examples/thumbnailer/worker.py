"""The resize worker: ``postroom worker worker:app --processes 2``.

See :mod:`postroom.demo.worker` for the handler and its outcomes.
"""

from __future__ import annotations

from postroom.demo.worker import app

__all__ = ["app"]
