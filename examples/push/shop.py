"""The shop: places orders and publishes one ``order.placed`` event for each.

It knows nothing of who reacts: every subscription of the topic gets its own copy
(SPEC §1, push). The backend comes from ``POSTROOM_URL`` (or ``--url``), the
same for this service and for ``reactions.py``::

    POSTROOM_URL=nats://127.0.0.1:4222 python examples/push/shop.py --orders 5
"""

from __future__ import annotations

import argparse
import os

import postroom

TOPIC = "order.placed"


def place_orders(client: postroom.Client, count: int) -> list[str]:
    """Publish ``count`` orders (every third one from a gold customer); their ids."""
    ids = []
    for n in range(1, count + 1):
        tier = "gold" if n % 3 == 0 else "standard"
        order = {"order": n, "customer": f"c{n % 4}", "total_cents": 1250 * n}
        ids.append(client.publish(TOPIC, order, headers={"tier": tier}))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("POSTROOM_URL"))
    parser.add_argument("--orders", type=int, default=5)
    args = parser.parse_args()
    with postroom.connect(args.url) as client:
        for event_id in place_orders(client, args.orders):
            print(event_id)


if __name__ == "__main__":
    main()
