"""The thumbnail HTTP service: ``python service.py --port 8000``.

The code lives in :mod:`postroom.demo.service` so that ``postroom demo`` works from
an installed wheel; this file is the entry point to run it by hand.
"""

from __future__ import annotations

from postroom.demo.service import create_app, main

__all__ = ["create_app", "main"]

if __name__ == "__main__":
    main()
