"""RedrivePolicy through boto3: a message received maxReceiveCount times and not
deleted lands on the dead letter queue, where it is received as a message; a
move task brings dead-lettered messages back to their source queue."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest


def _queues(sqs: Any, name: str, max_receives: int = 2) -> tuple[str, str, str]:
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}
    src = sqs.create_queue(
        QueueName=name, Attributes={"RedrivePolicy": json.dumps(policy)}
    )["QueueUrl"]
    return src, dlq, dlq_arn


def _fail(sqs: Any, url: str, times: int) -> None:
    """Receive the queue's one message ``times`` times without deleting it."""
    for i in range(times):
        [msg] = sqs.receive_message(
            QueueUrl=url, VisibilityTimeout=0, AttributeNames=["All"]
        )["Messages"]
        assert msg["Attributes"]["ApproximateReceiveCount"] == str(i + 1)


def _wait_for_task(sqs: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        [task] = sqs.list_message_move_tasks(SourceArn=arn)["Results"]
        if task["Status"] != "RUNNING":
            return dict(task)
        time.sleep(0.1)
    raise AssertionError(f"move task still running: {task}")


def test_redrive_policy_dead_letters_after_max_receives(sqs: Any, name: str) -> None:
    src, dlq, dlq_arn = _queues(sqs, name)
    attrs = sqs.get_queue_attributes(QueueUrl=src, AttributeNames=["RedrivePolicy"])
    assert (
        json.loads(attrs["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"]
        == dlq_arn
    )
    sent = sqs.send_message(
        QueueUrl=src,
        MessageBody="poison",
        MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}},
    )
    _fail(sqs, src, 2)
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    counts = sqs.get_queue_attributes(
        QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "1"}
    [dead] = sqs.receive_message(
        QueueUrl=dlq, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    assert dead["MessageId"] == sent["MessageId"] and dead["Body"] == "poison"
    assert dead["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    source_arn = dead["Attributes"]["DeadLetterQueueSourceArn"]
    assert source_arn.endswith(f":{name}")
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]
    assert sources == [src]
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"])


def test_move_task_brings_dead_letters_back(sqs: Any, name: str) -> None:
    src, dlq, dlq_arn = _queues(sqs, name, max_receives=1)
    sqs.send_message(QueueUrl=src, MessageBody="read-on-dlq")
    _fail(sqs, src, 1)
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    # Read on the dead letter queue (and given back at once) ...
    [seen] = sqs.receive_message(QueueUrl=dlq, VisibilityTimeout=0)["Messages"]
    assert seen["Body"] == "read-on-dlq"
    # ... and one dead-lettered, never read on the dead letter queue.
    sqs.send_message(QueueUrl=src, MessageBody="still-dead")
    _fail(sqs, src, 1)
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    task = _wait_for_task(sqs, dlq_arn)
    assert task["Status"] == "COMPLETED", task
    assert task["ApproximateNumberOfMessagesMoved"] == 2
    back = []
    while got := sqs.receive_message(QueueUrl=src, MaxNumberOfMessages=10).get(
        "Messages"
    ):
        back += got
    assert sorted(m["Body"] for m in back) == ["read-on-dlq", "still-dead"]
    counts = sqs.get_queue_attributes(
        QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "0"}
    with pytest.raises(sqs.exceptions.ResourceNotFoundException):
        sqs.cancel_message_move_task(TaskHandle=handle)


def test_move_task_to_destination_and_cancel(sqs: Any, name: str) -> None:
    _, dlq, dlq_arn = _queues(sqs, name, max_receives=1)
    other = sqs.create_queue(QueueName=f"{name}-other")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sqs.send_message_batch(
        QueueUrl=dlq,
        Entries=[{"Id": f"m{i}", "MessageBody": f"m{i}"} for i in range(5)],
    )
    handle = sqs.start_message_move_task(
        SourceArn=dlq_arn, DestinationArn=other_arn, MaxNumberOfMessagesPerSecond=1
    )["TaskHandle"]
    with pytest.raises(sqs.exceptions.UnsupportedOperation):
        sqs.start_message_move_task(SourceArn=dlq_arn)  # one task per source
    moved = sqs.cancel_message_move_task(TaskHandle=handle)
    assert 0 <= moved["ApproximateNumberOfMessagesMoved"] < 5
    [task] = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert task["Status"] == "CANCELLED" and task["DestinationArn"] == other_arn
    with pytest.raises(sqs.exceptions.ClientError) as info:
        sqs.start_message_move_task(SourceArn=other_arn)  # not a dead letter queue
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_redrive_policy_target_must_exist_and_allow(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    missing = {
        "deadLetterTargetArn": f"arn:aws:sqs:eu-west-1:000000000000:{name}-x",
        "maxReceiveCount": 3,
    }
    with pytest.raises(sqs.exceptions.ClientError) as info:
        sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(missing)}
        )
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
    deny = json.dumps({"redrivePermission": "denyAll"})
    closed = sqs.create_queue(
        QueueName=f"{name}-closed", Attributes={"RedriveAllowPolicy": deny}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=closed, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})
    with pytest.raises(sqs.exceptions.ClientError):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})
    sqs.set_queue_attributes(QueueUrl=closed, Attributes={"RedriveAllowPolicy": ""})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": ""})
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert "RedrivePolicy" not in got


def test_purging_the_dead_letter_queue_deletes_pending_dead_letters(
    sqs: Any, name: str
) -> None:
    src, dlq, _ = _queues(sqs, name, max_receives=1)
    sqs.send_message(QueueUrl=src, MessageBody="doomed")
    _fail(sqs, src, 1)
    assert "Messages" not in sqs.receive_message(QueueUrl=src)
    count = ["ApproximateNumberOfMessages"]
    got = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=count)
    assert got["Attributes"] == {"ApproximateNumberOfMessages": "1"}
    sqs.purge_queue(QueueUrl=dlq)
    got = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=count)
    assert got["Attributes"] == {"ApproximateNumberOfMessages": "0"}
    assert "Messages" not in sqs.receive_message(QueueUrl=dlq)
