"""``postroom.testing.admin``, run on every backend of ``BACKENDS``."""

from postroom.testing.admin import *  # noqa: F403
