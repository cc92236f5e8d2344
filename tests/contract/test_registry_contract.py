"""``postroom.testing.registry``, run on every backend of ``BACKENDS``."""

from postroom.testing.registry import *  # noqa: F403
