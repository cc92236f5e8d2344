"""Message actions through boto3: send (single, batch, delayed, with attributes),
receive (batches, long polling, visibility), delete, change visibility; the MD5
digests checked against SQS's algorithm written out here independently."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import pytest

from tests.http.conftest import Server

ATTRS = {
    "trace": {"DataType": "String", "StringValue": "abc-123"},
    "size": {"DataType": "Number", "StringValue": "42.5"},
    "thumb": {"DataType": "Binary", "BinaryValue": b"\x00\xff\x10binary"},
    "kind.custom": {"DataType": "String.image", "StringValue": "päng ✓"},
}


def sqs_md5_of_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    """SQS's MD5OfMessageAttributes, as its documentation describes it."""

    def field(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    out = b""
    for name in sorted(attributes):
        value = attributes[name]
        out += field(name.encode()) + field(value["DataType"].encode())
        if value["DataType"].startswith("Binary"):
            out += b"\x02" + field(value["BinaryValue"])
        else:
            out += b"\x01" + field(value["StringValue"].encode())
    return hashlib.md5(out).hexdigest()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_send_receive_delete_with_attributes_and_digests(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    body = '{"image": "cat.png", "note": "naïve ☃"}'
    trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc"}}
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody=body,
        MessageAttributes=ATTRS,
        MessageSystemAttributes=trace,
    )
    assert sent["MD5OfMessageBody"] == md5(body)
    assert sent["MD5OfMessageAttributes"] == sqs_md5_of_attributes(ATTRS)
    # moto's implementation of the same digest gives this value for ATTRS.
    assert sent["MD5OfMessageAttributes"] == "10046c4726f752e32ceb6e82651caa39"
    assert sent["MD5OfMessageSystemAttributes"] == sqs_md5_of_attributes(trace)
    [msg] = sqs.receive_message(
        QueueUrl=url,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    )["Messages"]
    assert msg["MessageId"] == sent["MessageId"]
    assert msg["Body"] == body
    assert msg["MD5OfBody"] == md5(body)
    assert msg["MessageAttributes"] == ATTRS
    assert msg["MD5OfMessageAttributes"] == sqs_md5_of_attributes(ATTRS)
    system = msg["Attributes"]
    assert system["ApproximateReceiveCount"] == "1"
    assert system["AWSTraceHeader"] == "Root=1-abc"
    assert int(system["SentTimestamp"]) <= int(
        system["ApproximateFirstReceiveTimestamp"]
    )
    sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert counts["ApproximateNumberOfMessages"] == "0"
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_receive_filters_attribute_names(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=ATTRS)
    [msg] = sqs.receive_message(
        QueueUrl=url,
        MessageAttributeNames=["trace", "kind.*"],
        AttributeNames=["ApproximateReceiveCount"],
    )["Messages"]
    wanted = {k: ATTRS[k] for k in ("trace", "kind.custom")}
    assert msg["MessageAttributes"] == wanted
    assert msg["MD5OfMessageAttributes"] == sqs_md5_of_attributes(wanted)
    assert msg["Attributes"] == {"ApproximateReceiveCount": "1"}


def test_send_batch_receive_batch_delete_batch(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    entries = [{"Id": f"e{i}", "MessageBody": f"body {i}"} for i in range(9)]
    entries.append({"Id": "late", "MessageBody": "later", "DelaySeconds": 600})
    entries.append({"Id": "bad", "MessageBody": ""})
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    entries.pop(0)
    sent = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert {s["Id"] for s in sent["Successful"]} == {e["Id"] for e in entries[:-1]}
    assert all(
        s["MD5OfMessageBody"] == md5(e["MessageBody"])
        for s, e in zip(
            sorted(sent["Successful"], key=lambda s: s["Id"]),
            sorted(entries[:-1], key=lambda e: e["Id"]),
            strict=True,
        )
    )
    [failed] = sent["Failed"]
    assert failed["Id"] == "bad" and failed["SenderFault"] is True
    got: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        assert len(batch) <= 10
        got += batch
    assert sorted(m["Body"] for m in got) == [f"body {i}" for i in range(1, 9)]
    counts = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    assert counts == {
        "ApproximateNumberOfMessagesDelayed": "1",
        "ApproximateNumberOfMessagesNotVisible": "8",
    }
    handles = [
        {"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
    ]
    handles.append({"Id": "junk", "ReceiptHandle": "not-a-handle"})
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=handles)
    assert len(deleted["Successful"]) == 8
    assert deleted["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.delete_message_batch(QueueUrl=url, Entries=[handles[0], handles[0]])
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.delete_message_batch(QueueUrl=url, Entries=[])


def test_long_polling_returns_a_message_sent_meanwhile(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    sender = threading.Timer(
        0.5, sqs.send_message, kwargs={"QueueUrl": url, "MessageBody": "late"}
    )
    sender.start()
    try:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=20)
    finally:
        sender.join()
    assert [m["Body"] for m in got["Messages"]] == ["late"]


def test_visibility_timeout_and_change_visibility(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="v")
    [first] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # leased for 60 s
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0
    )
    [second] = sqs.receive_message(
        QueueUrl=url, VisibilityTimeout=1, AttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert second["MessageId"] == first["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    with pytest.raises(sqs.exceptions.MessageNotInflight):
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=5
        )
    # The 1 s lease runs out: the message is received a third time.
    deadline = time.monotonic() + 10
    third: list[dict[str, Any]] = []
    while not third and time.monotonic() < deadline:
        third = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
    assert third and third[0]["MessageId"] == first["MessageId"]
    changed = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {
                "Id": "a",
                "ReceiptHandle": third[0]["ReceiptHandle"],
                "VisibilityTimeout": 60,
            },
            {
                "Id": "b",
                "ReceiptHandle": second["ReceiptHandle"],
                "VisibilityTimeout": 60,
            },
        ],
    )
    assert [s["Id"] for s in changed["Successful"]] == ["a"]
    assert changed["Failed"][0]["Code"] == "AWS.SimpleQueueService.MessageNotInflight"
    # Deleting with a stale handle succeeds and deletes nothing, as on SQS.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    counts = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_queue_delay_and_receive_limits(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name, Attributes={"DelaySeconds": "600"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="hidden")
    sqs.send_message(QueueUrl=url, MessageBody="now", DelaySeconds=0)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["now"]
    with pytest.raises(sqs.exceptions.ClientError) as info:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")
    with pytest.raises(sqs.exceptions.ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_oversized_messages_are_refused_in_sqs_terms(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": "1024"})[
        "QueueUrl"
    ]
    with pytest.raises(sqs.exceptions.ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 1025)
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
    entries = [{"Id": f"e{i}", "MessageBody": "y" * 40_000} for i in range(10)]
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):  # over the server's limit
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def test_sqs_and_postroom_clients_share_messages(
    sqs: Any, sqs_server: Server, name: str
) -> None:
    import postroom

    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"image": "cat.png"}',
        MessageAttributes={"trace": {"DataType": "String", "StringValue": "t-1"}},
    )
    with postroom.connect(sqs_server.url) as client:
        [d] = client.receive(name)
        assert d.message.json() == {"image": "cat.png"}
        client.ack(d)
        client.send(name, {"n": 1}, headers={"trace": "t-2"})
    [msg] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(msg["Body"]) == {"n": 1}
    assert msg["MessageAttributes"] == {
        "trace": {"DataType": "String", "StringValue": "t-2"}
    }
    assert msg["MD5OfMessageAttributes"] == sqs_md5_of_attributes(
        msg["MessageAttributes"]
    )


def test_boto3_resource_api(sqs_server: Server, name: str) -> None:
    import boto3

    resource = boto3.resource(
        "sqs",
        endpoint_url=sqs_server.base,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )
    queue = resource.create_queue(QueueName=name)
    queue.send_messages(Entries=[{"Id": "a", "MessageBody": "one"}])
    [message] = queue.receive_messages(WaitTimeSeconds=1)
    assert message.body == "one"
    message.change_visibility(VisibilityTimeout=30)
    message.delete()
    queue.load()
    assert queue.attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    queue.delete()
