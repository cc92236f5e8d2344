"""ReceiveMessage, DeleteMessage(Batch), ChangeMessageVisibility(Batch).

A ReceiptHandle is the HTTP API's receipt (queue, message id, the backend's
lease token, attempts). Deleting with a handle whose lease was lost succeeds
and deletes nothing, as SQS does; changing the visibility of a message that is
no longer in flight answers MessageNotInflight.
"""

from __future__ import annotations

from typing import Any

from ...model.errors import LeaseLost
from ...model.message import Delivery, now_ms
from .._receipts import HttpReceipt, InvalidReceipt
from ._call import Call, action
from ._errors import SqsError, error
from ._messages import origin_queue, render
from ._send import batch_entries, failure, int_param

__all__: list[str] = []

MIN_LEASE = 0.001  # a visibility timeout of 0 s: visible again at once
SETTLE_BATCH = 100  # dead letters moved onto a dead letter queue per receive


def _names(params: dict[str, Any], *keys: str) -> list[str]:
    names: list[str] = []
    for key in keys:
        value = params.get(key) or []
        if not isinstance(value, list):
            raise error("InvalidParameterValue", f"{key} must be a list of names")
        names.extend(str(v) for v in value)
    return names


@action("ReceiveMessage", "receive")
async def receive_message(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Lease up to 10 messages, long-polling up to 20 s."""
    name, policy = await call.queue(params)
    count = int_param(params, "MaxNumberOfMessages", 1, 10) or 1
    wait = int_param(params, "WaitTimeSeconds", 0, 20)
    if wait is None:
        wait = int(policy.attributes.get("ReceiveMessageWaitTimeSeconds", "0"))
    visibility = int_param(params, "VisibilityTimeout", 0, 43200)
    lease = None if visibility is None else max(float(visibility), MIN_LEASE)
    await call.settle(name, policy, limit=SETTLE_BATCH)
    got = await call.client.receive(
        name, max_messages=count, visibility_timeout=lease, wait=wait
    )
    if not got:
        return {}
    received = now_ms()
    system = _names(params, "AttributeNames", "MessageSystemAttributeNames")
    wanted = _names(params, "MessageAttributeNames")
    messages = []
    for d in got:
        origin = origin_queue(d.message)
        messages.append(
            render(
                d,
                HttpReceipt.from_delivery(d, received).encode(),
                system_names=system,
                attribute_names=wanted,
                received_ms=received,
                source_arn=call.arn(origin) if origin and origin != name else None,
            )
        )
    return {"Messages": messages}


def _delivery(queue: str, handle: Any) -> Delivery:
    if not isinstance(handle, str) or not handle:
        raise error("MissingParameter", "The request must contain ReceiptHandle.")
    try:
        receipt = HttpReceipt.decode(handle)
    except InvalidReceipt:
        raise error(
            "ReceiptHandleIsInvalid",
            f'The input receipt handle "{handle[:64]}" is not a valid receipt handle.',
        ) from None
    if receipt.queue != queue:
        raise error(
            "ReceiptHandleIsInvalid",
            "The receipt handle was issued by another queue.",
        )
    return receipt.delivery()


@action("DeleteMessage", "receive")
async def delete_message(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a received message."""
    name, _ = await call.queue(params)
    await call.client.ack_many([_delivery(name, params.get("ReceiptHandle"))])
    return {}


@action("DeleteMessageBatch", "receive")
async def delete_message_batch(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Delete up to 10 received messages in one round trip."""
    name, _ = await call.queue(params)
    failed, ok, deliveries = [], [], []
    for entry in batch_entries(params):
        try:
            deliveries.append(_delivery(name, entry.get("ReceiptHandle")))
        except SqsError as exc:
            failed.append(failure(entry["Id"], exc))
            continue
        ok.append({"Id": entry["Id"]})
    await call.client.ack_many(deliveries)
    return {"Successful": ok, "Failed": failed}


async def _change(call: Call, queue: str, entry: dict[str, Any]) -> None:
    delivery = _delivery(queue, entry.get("ReceiptHandle"))
    seconds = int_param(entry, "VisibilityTimeout", 0, 43200)
    if seconds is None:
        raise error("MissingParameter", "The request must contain VisibilityTimeout.")
    try:
        await call.client.extend(delivery, max(float(seconds), MIN_LEASE))
    except LeaseLost:
        raise error(
            "MessageNotInflight",
            "The message referred to isn't in flight (its visibility timeout "
            "ended and it was received again, or it was deleted).",
        ) from None


@action("ChangeMessageVisibility", "receive")
async def change_message_visibility(
    call: Call, params: dict[str, Any]
) -> dict[str, Any]:
    """Make a received message visible again after VisibilityTimeout seconds."""
    name, _ = await call.queue(params)
    await _change(call, name, params)
    return {}


@action("ChangeMessageVisibilityBatch", "receive")
async def change_message_visibility_batch(
    call: Call, params: dict[str, Any]
) -> dict[str, Any]:
    """ChangeMessageVisibility for up to 10 messages."""
    name, _ = await call.queue(params)
    failed, ok = [], []
    for entry in batch_entries(params):
        try:
            await _change(call, name, entry)
        except SqsError as exc:
            failed.append(failure(entry["Id"], exc))
            continue
        ok.append({"Id": entry["Id"]})
    return {"Successful": ok, "Failed": failed}
