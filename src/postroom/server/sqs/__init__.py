"""The SQS-compatible endpoint of ``postroom serve`` (see ``docs/sqs.md``).

``routes()`` gives the Starlette route (``POST /`` with ``X-Amz-Target``) and
``new_state()`` what the endpoint keeps per process, in ``app.state.sqs``.
"""

from __future__ import annotations

from starlette.routing import Route

from . import _move, _queues, _receive, _send  # noqa: F401 - register the actions
from ._protocol import new_state, sqs_endpoint, too_large

__all__ = ["new_state", "routes", "too_large"]


def routes() -> list[Route]:
    """The endpoint's route: ``POST /`` (the dashboard answers ``GET /``)."""
    return [Route("/", sqs_endpoint, methods=["POST"])]
