"""Generated names and receipts against the HTTP layer (a real server process):
any queue name, percent-encoded in the path, is either refused with a 4xx or
reaches exactly that queue; any receipt's group is either a valid group or the
receipt is refused. Never a 5xx, never another queue."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postroom.server import HttpReceipt
from postroom.server._receipts import InvalidReceipt

from .conftest import Server

NAMES = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
) | st.builds("/".join, st.lists(st.sampled_from(["a", "%2F", "%", "..", "", "b c"])))


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=NAMES)
def test_any_name_reaches_its_own_queue_or_is_refused(
    server: Server, name: str
) -> None:
    with server.client() as http:
        _round_trip(http, name)


def _round_trip(http: httpx.Client, name: str) -> None:
    path = f"/v1/queues/{quote(name, safe='')}"
    sent = http.post(f"{path}/messages", json={"body": name})
    if name in ("", ".", ".."):  # no path segment, or one clients resolve away
        return
    assert sent.status_code in (201, 400, 422), sent.text
    if sent.status_code != 201:
        return
    got = http.post(f"{path}/receive", json={"max_messages": 10}).json()["messages"]
    assert [(m["queue"], m["body"]) for m in got] == [(name, name)]
    for m in got:
        ack = http.post(f"{path}/ack", json={"receipt": m["receipt"], "id": m["id"]})
        assert ack.status_code == 200, ack.text


@given(group=st.text(max_size=30) | st.integers() | st.none())
def test_a_receipt_carries_a_valid_group_or_is_refused(group: object) -> None:
    data = {"q": "q", "i": "id", "r": "r", "a": 1, "c": "", "t": 0, "g": group}
    token = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    try:
        receipt = HttpReceipt.decode(token)
    except InvalidReceipt:
        return
    assert isinstance(group, str) and receipt.delivery().message.group == group
