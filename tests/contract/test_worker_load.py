"""``postroom.testing.load``, run on every backend of ``BACKENDS``."""

from postroom.testing.load import *  # noqa: F403
