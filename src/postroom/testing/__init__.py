"""The contract suite, importable: run it on a backend of your own with pytest.

Every backend of postroom passes the same tests; a third-party backend (one
registered with :func:`postroom.backends.base.register_scheme`) runs them the same
way. The tests are plain pytest functions that take a ``url`` fixture (a fresh,
isolated URL of the backend under test: a new file, key prefix, schema or vhost
per test) and the ``client`` fixture defined here. In your ``conftest.py``::

    import pytest

    pytest_plugins = ["postroom.testing"]  # the client fixture, the slow marker


    @pytest.fixture
    def url(tmp_path):
        return f"mybackend://localhost/?prefix=t{uuid.uuid4().hex[:12]}"

and one test module per part of the contract::

    from postroom.testing.queues import *  # noqa: F403
    from postroom.testing.topics import *  # noqa: F403

The parts: :mod:`~postroom.testing.queues` (leases, retries, dead letters,
redrive, dedup, long polls, counters), :mod:`~postroom.testing.settle` (several
deliveries settled in one call), :mod:`~postroom.testing.admin` (deleting
queues, policy attributes), :mod:`~postroom.testing.input` (careless and hostile
arguments refused before the backend is touched), :mod:`~postroom.testing.topics`
(fan-out, filters, subscriptions), :mod:`~postroom.testing.workers` (the worker
runtime's outcomes, timeouts, leases, shutdown), :mod:`~postroom.testing.durations`
(handler duration histograms) and :mod:`~postroom.testing.load` (many handlers in
flight; marked ``slow``). See ``docs/backends/writing.md``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import postroom

__all__ = ["client", "pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slow`` marker the suite uses."""
    config.addinivalue_line(
        "markers", "slow: long-running tests (real processes, load)"
    )


@pytest.fixture
def client(url: str) -> Iterator[postroom.Client]:
    """A sync client on the fresh backend of the ``url`` fixture."""
    with postroom.connect(url) as c:
        yield c
