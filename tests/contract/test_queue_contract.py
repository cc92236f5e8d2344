"""``postroom.testing.queues``, run on every backend of ``BACKENDS``."""

from postroom.testing.queues import *  # noqa: F403
