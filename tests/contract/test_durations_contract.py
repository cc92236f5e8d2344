"""``postroom.testing.durations``, run on every backend of ``BACKENDS``."""

from postroom.testing.durations import *  # noqa: F403
