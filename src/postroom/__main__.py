"""``python -m postroom``: the ``postroom`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
