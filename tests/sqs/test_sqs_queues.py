"""Queue actions through boto3: create, find, list with pagination, attributes,
tags, purge, delete, and the SQS errors the SDK raises as its own exceptions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.http.conftest import Server


def test_create_get_list_delete_queue(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url.endswith(f"/000000000000/{name}")
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url  # idempotent
    assert url in sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as info:
        sqs.get_queue_url(QueueName=name)
    err = info.value.response["Error"]
    assert err["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.delete_queue(QueueUrl=url)


def test_list_queues_pages_with_next_token(sqs: Any, name: str) -> None:
    urls = [sqs.create_queue(QueueName=f"{name}-{i}")["QueueUrl"] for i in range(5)]
    seen: list[str] = []
    page = sqs.list_queues(QueueNamePrefix=name, MaxResults=2)
    pages = 1
    while True:
        seen += page["QueueUrls"]
        if "NextToken" not in page:
            break
        page = sqs.list_queues(
            QueueNamePrefix=name, MaxResults=2, NextToken=page["NextToken"]
        )
        pages += 1
    assert seen == urls and pages == 3
    paginator = sqs.get_paginator("list_queues")
    listed = [
        u
        for p in paginator.paginate(
            QueueNamePrefix=name, PaginationConfig={"PageSize": 2}
        )
        for u in p.get("QueueUrls", [])
    ]
    assert listed == urls


def test_queue_attributes_get_set_and_conflict(sqs: Any, name: str) -> None:
    attrs = {
        "VisibilityTimeout": "45",
        "DelaySeconds": "2",
        "MessageRetentionPeriod": "86400",
    }
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert {k: got[k] for k in attrs} == attrs
    assert got["QueueArn"] == f"arn:aws:sqs:eu-west-1:000000000000:{name}"
    assert got["ApproximateNumberOfMessages"] == "0"
    assert got["ReceiveMessageWaitTimeSeconds"] == "0"
    assert got["MaximumMessageSize"] == "262144"
    assert int(got["CreatedTimestamp"]) > 0
    assert sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"] == url
    with pytest.raises(sqs.exceptions.QueueNameExists):
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "5"})
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": "7", "DelaySeconds": "0"}
    )
    got = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["VisibilityTimeout", "DelaySeconds"]
    )["Attributes"]
    assert got == {"VisibilityTimeout": "7", "DelaySeconds": "0"}


def test_unsupported_attributes_and_actions_answer_sqs_errors(
    sqs: Any, name: str
) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"KmsMasterKeyId": "k"})
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Nonsense"])
    with pytest.raises(sqs.exceptions.InvalidAttributeValue):
        sqs.create_queue(
            QueueName=f"{name}-f", Attributes={"SqsManagedSseEnabled": "true"}
        )
    with pytest.raises(sqs.exceptions.InvalidAttributeValue):
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "901"})
    with pytest.raises(sqs.exceptions.UnsupportedOperation):
        sqs.add_permission(
            QueueUrl=url, Label="l", AWSAccountIds=["1"], Actions=["SendMessage"]
        )
    with pytest.raises(ClientError) as info:
        sqs.create_queue(QueueName="bad name!")
    assert info.value.response["Error"]["Code"] == "InvalidParameterValue"


def test_tags_are_kept_with_the_queue(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name, tags={"team": "images"})["QueueUrl"]
    sqs.tag_queue(QueueUrl=url, Tags={"env": "test"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {
        "team": "images",
        "env": "test",
    }
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "test"}


def test_purge_queue_deletes_its_messages(sqs: Any, name: str) -> None:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    sqs.purge_queue(QueueUrl=url)
    got = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert got["Attributes"] == {"ApproximateNumberOfMessages": "0"}
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_unknown_action_and_bad_body(sqs_server: Server) -> None:
    import httpx

    headers = {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "AmazonSQS.Frobnicate",
    }
    resp = httpx.post(sqs_server.base + "/", headers=headers, content=b"{}")
    assert resp.status_code == 400
    assert resp.json()["__type"].endswith("#InvalidAction")
    headers["x-amz-target"] = "AmazonSQS.ListQueues"
    resp = httpx.post(sqs_server.base + "/", headers=headers, content=b"[1]")
    assert resp.status_code == 400
    assert resp.headers["x-amzn-query-error"] == "SerializationException;Sender"
    resp = httpx.post(
        sqs_server.base + "/",
        headers={**headers, "origin": "https://evil.example"},
        content=b"{}",
    )
    assert resp.status_code == 403
    assert json.loads(resp.content)["__type"].endswith("#AccessDenied")


def test_postroom_queue_keeps_its_policy_under_sqs_calls(
    sqs: Any, sqs_server: Server, name: str
) -> None:
    import httpx

    with httpx.Client(base_url=sqs_server.base) as http:
        resp = http.put(f"/v1/queues/{name}", json={"max_attempts": 3})
        assert resp.status_code == 200, resp.text
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "9"})
        policy = http.get(f"/v1/queues/{name}").json()["policy"]
    assert (policy["max_attempts"], policy["visibility_timeout"]) == (3, 9.0)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    [msg] = sqs.receive_message(QueueUrl=url)["Messages"]
    assert msg["Body"] == "x"
