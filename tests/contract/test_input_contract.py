"""``postroom.testing.input``, run on every backend of ``BACKENDS``."""

from postroom.testing.input import *  # noqa: F403
