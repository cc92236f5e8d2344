"""``postroom.testing.order``, run on every backend of ``BACKENDS``."""

from postroom.testing.order import *  # noqa: F403
