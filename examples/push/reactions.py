"""Three services' reactions to ``order.placed``, each on its own subscription.

- ``email`` confirms every order;
- ``stock`` reserves the items of every order;
- ``loyalty`` credits points, for gold customers only (a header filter).

Each subscription is a durable queue of its own, with its own retries and dead
letters: a failing reaction does not hold the others back. Run them with the
worker (the subscriptions are created when it starts)::

    POSTROOM_URL=nats://127.0.0.1:4222 postroom worker reactions:app

Each reaction appends one line per event to ``$PUSH_EXAMPLE_OUT/<name>.log``
(default ``./push-out``), standing in for the mail, the stock table and the points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import postroom

TOPIC = "order.placed"
OUT = Path(os.environ.get("PUSH_EXAMPLE_OUT", "push-out"))

app = postroom.App()  # the URL from POSTROOM_URL, or --url of `postroom worker`


@dataclass
class Order:
    """The body of an ``order.placed`` event (validated by the worker)."""

    order: int
    customer: str
    total_cents: int


def _record(reaction: str, line: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / f"{reaction}.log").open("a") as log:
        log.write(line + "\n")


@app.subscriber(TOPIC, subscription="email")
def send_confirmation(order: Order) -> None:
    _record("email", f"order {order.order}: confirmation to {order.customer}")


@app.subscriber(TOPIC, subscription="stock", concurrency=2)
async def reserve_stock(order: Order) -> None:
    _record("stock", f"order {order.order}: items reserved")


@app.subscriber(TOPIC, subscription="loyalty", filter={"tier": "gold"})
def credit_points(order: Order) -> None:
    _record("loyalty", f"order {order.order}: {order.total_cents // 100} points")
