"""``postroom.testing.periodic``, run on every backend of ``BACKENDS``."""

from postroom.testing.periodic import *  # noqa: F403
