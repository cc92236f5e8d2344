"""``postroom.testing.workers``, run on every backend of ``BACKENDS``."""

from postroom.testing.workers import *  # noqa: F403
