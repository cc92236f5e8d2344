"""FIFO queues through boto3: ``*.fifo`` names with ``FifoQueue``, message groups
(send order, one message of a group in flight), deduplication ids and
content-based deduplication within the window, ``SequenceNumber``, and SQS's
errors for the FIFO parameters on the wrong kind of queue."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError

FIFO = {"FifoQueue": "true"}


def fifo_queue(sqs: Any, name: str, **attributes: str) -> str:
    url: str = sqs.create_queue(
        QueueName=f"{name}.fifo", Attributes={**FIFO, **attributes}
    )["QueueUrl"]
    return url


def code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def test_fifo_queue_attributes_and_names(sqs: Any, name: str) -> None:
    url = fifo_queue(sqs, name)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true"
    assert attrs["ContentBasedDeduplication"] == "false"
    assert attrs["DeduplicationScope"] == "queue"
    assert attrs["FifoThroughputLimit"] == "perQueue"
    # The same attributes again: the same queue.
    assert fifo_queue(sqs, name) == url
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"ContentBasedDeduplication": "true"}
    )
    # Only the attributes given are compared, as on SQS.
    assert fifo_queue(sqs, name) == url
    with pytest.raises(sqs.exceptions.QueueNameExists):
        fifo_queue(sqs, name, ContentBasedDeduplication="false")
    got = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ContentBasedDeduplication"]
    )["Attributes"]
    assert got == {"ContentBasedDeduplication": "true"}
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"FifoQueue": "false"})
    with pytest.raises(ClientError) as info:  # FIFO without the suffix
        sqs.create_queue(QueueName=name, Attributes=FIFO)
    assert code(info) == "InvalidParameterValue"
    with pytest.raises(ClientError) as info:  # the suffix without FIFO
        sqs.create_queue(QueueName=f"{name}-std.fifo")
    assert code(info) == "InvalidParameterValue"
    standard = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert (
        "FifoQueue"
        not in sqs.get_queue_attributes(QueueUrl=standard, AttributeNames=["All"])[
            "Attributes"
        ]
    )
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.set_queue_attributes(
            QueueUrl=standard, Attributes={"ContentBasedDeduplication": "true"}
        )
    with pytest.raises(sqs.exceptions.InvalidAttributeValue):
        sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"DeduplicationScope": "everywhere"}
        )


def test_groups_keep_send_order_one_message_in_flight_each(sqs: Any, name: str) -> None:
    url = fifo_queue(sqs, name)
    sent: dict[str, list[str]] = {"a": [], "b": []}
    numbers = []
    for i in range(3):
        for group in ("a", "b"):
            body = f"{group}{i}"
            reply = sqs.send_message(
                QueueUrl=url,
                MessageBody=body,
                MessageGroupId=group,
                MessageDeduplicationId=body,
            )
            sent[group].append(reply["MessageId"])
            numbers.append(int(reply["SequenceNumber"]))
    assert numbers == sorted(numbers) and len(set(numbers)) == 6
    got: dict[str, list[str]] = {"a": [], "b": []}
    for _ in range(3):
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        )["Messages"]
        # One message of each group at a time, the next once it is deleted.
        assert sorted(m["Attributes"]["MessageGroupId"] for m in batch) == ["a", "b"]
        assert not sqs.receive_message(QueueUrl=url).get("Messages")
        for m in batch:
            attrs = m["Attributes"]
            got[attrs["MessageGroupId"]].append(m["MessageId"])
            assert attrs["MessageDeduplicationId"] == m["Body"]
            assert int(attrs["SequenceNumber"]) in numbers
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert got == sent


def test_a_group_whose_head_is_retried_waits_for_it(sqs: Any, name: str) -> None:
    url = fifo_queue(sqs, name, ContentBasedDeduplication="true")
    for body in ("first", "second"):
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="g")
    [head] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert head["Body"] == "first"
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=head["ReceiptHandle"], VisibilityTimeout=0
    )
    [again] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert again["Body"] == "first"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    [last] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert last["Body"] == "second"


def test_deduplication_ids_and_content_based_deduplication(sqs: Any, name: str) -> None:
    url = fifo_queue(sqs, name)
    first = sqs.send_message(
        QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d1"
    )
    again = sqs.send_message(
        QueueUrl=url, MessageBody="y", MessageGroupId="h", MessageDeduplicationId="d1"
    )
    assert again["MessageId"] == first["MessageId"]
    assert again["SequenceNumber"] == first["SequenceNumber"]
    with pytest.raises(ClientError) as info:  # neither an id nor content-based
        sqs.send_message(QueueUrl=url, MessageBody="z", MessageGroupId="g")
    assert code(info) == "InvalidParameterValue"

    content = fifo_queue(sqs, f"{name}-c", ContentBasedDeduplication="true")
    one = sqs.send_message(QueueUrl=content, MessageBody="same", MessageGroupId="g")
    two = sqs.send_message(QueueUrl=content, MessageBody="same", MessageGroupId="g")
    other = sqs.send_message(QueueUrl=content, MessageBody="else", MessageGroupId="g")
    assert one["MessageId"] == two["MessageId"] != other["MessageId"]
    [m] = sqs.receive_message(
        QueueUrl=content, AttributeNames=["MessageDeduplicationId"]
    )["Messages"]
    digest = hashlib.sha256(b"same").hexdigest()
    assert m["Attributes"] == {"MessageDeduplicationId": digest}

    scoped = fifo_queue(sqs, f"{name}-s", DeduplicationScope="messageGroup")
    ids = {
        sqs.send_message(
            QueueUrl=scoped, MessageBody=g, MessageGroupId=g, MessageDeduplicationId="d"
        )["MessageId"]
        for g in ("a", "b", "a")
    }
    assert len(ids) == 2  # "d" of group a twice, "d" of group b once


def test_batch_sends_in_order_with_sequence_numbers(sqs: Any, name: str) -> None:
    url = fifo_queue(sqs, name, ContentBasedDeduplication="true")
    entries = [
        {"Id": f"e{i}", "MessageBody": f"m{i}", "MessageGroupId": "g"} for i in range(5)
    ]
    entries.append({"Id": "bad", "MessageBody": "no group"})
    reply = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert [f["Id"] for f in reply["Failed"]] == ["bad"]
    assert reply["Failed"][0]["Code"] == "MissingParameter"
    ok = reply["Successful"]
    assert [e["Id"] for e in ok] == [f"e{i}" for i in range(5)]
    numbers = [int(e["SequenceNumber"]) for e in ok]
    assert numbers == sorted(numbers)
    bodies = []
    for _ in range(5):
        [m] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        bodies.append(m["Body"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert bodies == [f"m{i}" for i in range(5)]


def test_fifo_parameters_on_the_wrong_queue_answer_sqs_errors(
    sqs: Any, name: str
) -> None:
    url = fifo_queue(sqs, name, DelaySeconds="0")
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert code(info) == "MissingParameter"
    with pytest.raises(ClientError) as info:
        sqs.send_message(
            QueueUrl=url,
            MessageBody="x",
            MessageGroupId="g",
            MessageDeduplicationId="d",
            DelaySeconds=5,
        )
    assert code(info) == "InvalidParameterValue"
    with pytest.raises(ClientError) as info:
        sqs.send_message(
            QueueUrl=url,
            MessageBody="x",
            MessageGroupId="white space",
            MessageDeduplicationId="d",
        )
    assert code(info) == "InvalidParameterValue"
    standard = sqs.create_queue(QueueName=name)["QueueUrl"]
    for extra in ({"MessageGroupId": "g"}, {"MessageDeduplicationId": "d"}):
        with pytest.raises(ClientError) as info:
            sqs.send_message(QueueUrl=standard, MessageBody="x", **extra)
        assert code(info) == "InvalidParameterValue"
    # A FIFO queue's dead letter queue is a FIFO queue too.
    with pytest.raises(ClientError) as info:
        sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={
                "RedrivePolicy": '{"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:'
                f'000000000000:{name}", "maxReceiveCount": "3"}}'
            },
        )
    assert code(info) == "InvalidParameterValue"
