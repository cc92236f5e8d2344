"""``postroom.testing.settle``, run on every backend of ``BACKENDS``."""

from postroom.testing.settle import *  # noqa: F403
