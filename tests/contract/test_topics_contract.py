"""``postroom.testing.topics``, run on every backend of ``BACKENDS``."""

from postroom.testing.topics import *  # noqa: F403
