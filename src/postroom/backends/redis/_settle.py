"""The script calls of a settle batch: acks, failed attempts, the next claim.

A batch goes down one connection as pipelined EVALSHAs (one round trip): per
queue one ``ack`` call and one ``fail`` call (retries and dead letters), then
the ``claim`` call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ...model.message import Delivery, now_ms
from ...model.settlement import Burial, Rerun
from .._common import parse_receipt
from ._scripts import FIRST_TRY, Call

__all__ = ["BURY", "ack_calls", "fail_calls", "lost_of", "receipt_args"]

# Messages per script call (keeps each call short).
CHUNK = 1000
# The delay that tells fail.lua to move the message to the dead letters.
BURY = -1

# A failed attempt as fail.lua takes it: delivery, delay (or BURY), reason, entry.
FailRecord = tuple[Delivery, int, str, str]


def receipt_args(deliveries: Sequence[Delivery]) -> list[str]:
    """``id, token`` of each delivery, flattened."""
    args: list[str] = []
    for d in deliveries:
        args += parse_receipt(d.receipt)
    return args


def _by_queue(deliveries: Sequence[Any], queue_of: Callable[[Any], str]) -> Any:
    groups: dict[str, list[Any]] = {}
    for d in deliveries:
        groups.setdefault(queue_of(d), []).append(d)
    for queue, group in groups.items():
        for i in range(0, len(group), CHUNK):
            yield queue, group[i : i + CHUNK]


def ack_calls(
    keys: Callable[[str], list[str]], deliveries: Sequence[Delivery]
) -> tuple[list[Call], list[list[Delivery]]]:
    """The ack script calls (per queue, in chunks) and the deliveries of each."""
    calls: list[Call] = []
    groups: list[list[Delivery]] = []
    for queue, chunk in _by_queue(deliveries, lambda d: d.queue):
        calls.append(("ack", keys(queue), [FIRST_TRY, *receipt_args(chunk)]))
        groups.append(chunk)
    return calls, groups


def fail_calls(
    keys: Callable[[str], list[str]],
    reruns: Sequence[Rerun],
    burials: Sequence[Burial],
) -> tuple[list[Call], list[list[Delivery]]]:
    """The fail script calls (per queue, in chunks) and the deliveries of each."""
    records: list[FailRecord] = [
        (r.delivery, r.delay_ms, "", json.dumps(r.entry.to_dict())) for r in reruns
    ]
    records += [
        (b.delivery, BURY, b.reason, json.dumps(b.entry.to_dict())) for b in burials
    ]
    calls: list[Call] = []
    groups: list[list[Delivery]] = []
    now = now_ms()
    for queue, chunk in _by_queue(records, lambda r: r[0].queue):
        args: list[Any] = [now]
        for d, delay, reason, entry in chunk:
            args += (*parse_receipt(d.receipt), delay, reason, entry)
        calls.append(("fail", keys(queue), args))
        groups.append([r[0] for r in chunk])
    return calls, groups


def lost_of(groups: list[list[Delivery]], results: Sequence[Any]) -> list[Delivery]:
    """The lost leases reported by ack or fail replies (an error reply is raised)."""
    lost: list[Delivery] = []
    for group, reply in zip(groups, results, strict=True):
        if isinstance(reply, Exception):
            raise reply
        lost += [group[pos - 1] for pos in reply]
    return lost
