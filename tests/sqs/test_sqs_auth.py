"""Signature V4 against the server's tokens: the access key id names a token,
the secret is the token; wrong signatures are refused; scopes and queue
patterns hold; and the AWS CLI works unchanged with --endpoint-url."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests.http.conftest import Server
from tests.sqs.conftest import ADMIN, ORDERS, sqs_client


def _code(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = info.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


def test_signed_with_a_token_name_and_secret(secured_server: Server) -> None:
    admin = sqs_client(secured_server, "admin", ADMIN)
    name = f"q-{uuid.uuid4().hex[:8]}"
    url = admin.create_queue(QueueName=name)["QueueUrl"]
    admin.send_message(QueueUrl=url, MessageBody="signed")
    [msg] = admin.receive_message(QueueUrl=url, AttributeNames=["SenderId"])["Messages"]
    assert msg["Body"] == "signed" and msg["Attributes"]["SenderId"] == "admin"
    # The token is never the access key id (it would travel in the clear).
    with pytest.raises(ClientError) as info:
        sqs_client(secured_server, ADMIN, ADMIN).list_queues()
    assert _code(info) == ("InvalidClientTokenId", 403)


@pytest.mark.parametrize(
    ("key", "secret", "code"),
    [
        ("admin", "wrong-secret-0123456789", "SignatureDoesNotMatch"),
        ("admin", ORDERS, "SignatureDoesNotMatch"),
        ("nobody", ADMIN, "InvalidClientTokenId"),
    ],
)
def test_wrong_signatures_are_refused(
    secured_server: Server, key: str, secret: str, code: str
) -> None:
    client = sqs_client(secured_server, key, secret)
    with pytest.raises(ClientError) as info:
        client.list_queues()
    assert _code(info) == (code, 403)


def test_unsigned_and_tampered_requests_are_refused(secured_server: Server) -> None:
    unsigned = sqs_client(secured_server, signature_version=UNSIGNED)
    with pytest.raises(ClientError) as info:
        unsigned.list_queues()
    assert _code(info) == ("MissingAuthenticationToken", 403)
    # A request signed for one body and sent with another.
    admin = sqs_client(secured_server, "admin", ADMIN)
    captured: dict[str, Any] = {}

    def keep(request: Any, **_: Any) -> None:
        captured.update(headers=dict(request.headers), body=request.body)

    admin.meta.events.register("before-send.sqs.ListQueues", keep)
    admin.list_queues(QueueNamePrefix="a")
    headers = {
        k: (v.decode() if isinstance(v, bytes) else v)
        for k, v in captured["headers"].items()
    }
    body = captured["body"].replace(b'"a"', b'"b"')
    resp = httpx.post(secured_server.base + "/", headers=headers, content=body)
    assert resp.status_code == 403
    assert resp.headers["x-amzn-query-error"] == "SignatureDoesNotMatch;Sender"


def test_token_scopes_and_queue_patterns(secured_server: Server) -> None:
    admin = sqs_client(secured_server, "admin", ADMIN)
    orders = sqs_client(secured_server, "orders", ORDERS)
    mine = admin.create_queue(QueueName=f"orders-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    theirs = admin.create_queue(QueueName=f"billing-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    orders.send_message(QueueUrl=mine, MessageBody="ok")
    [msg] = orders.receive_message(QueueUrl=mine)["Messages"]
    orders.delete_message(QueueUrl=mine, ReceiptHandle=msg["ReceiptHandle"])
    listed = orders.list_queues()["QueueUrls"]
    assert mine in listed and theirs not in listed
    for call in (
        lambda: orders.send_message(QueueUrl=theirs, MessageBody="no"),
        lambda: orders.receive_message(QueueUrl=theirs),
        lambda: orders.get_queue_url(QueueName=theirs.rsplit("/", 1)[1]),
        lambda: orders.create_queue(QueueName="orders-new"),  # needs admin
        lambda: orders.purge_queue(QueueUrl=mine),  # needs admin
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert _code(info) == ("AccessDenied", 403)


def _aws(server: Server, tmp_path: Path, *args: str) -> Any:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "admin",
        "AWS_SECRET_ACCESS_KEY": ADMIN,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    aws = Path(sys.executable).with_name("aws")
    cmd = [str(aws), "sqs", *args, "--endpoint-url", server.base, "--output", "json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_aws_cli_sends_and_receives(secured_server: Server, tmp_path: Path) -> None:
    if not Path(sys.executable).with_name("aws").exists():
        reason = "the AWS CLI is not installed: pip install 'postroom[test]'"
        if os.environ.get("POSTROOM_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    name = f"cli-{uuid.uuid4().hex[:8]}"
    url = _aws(secured_server, tmp_path, "create-queue", "--queue-name", name)[
        "QueueUrl"
    ]
    sent = _aws(
        secured_server, tmp_path, "send-message", "--queue-url", url,
        "--message-body", "from the CLI",
    )  # fmt: skip
    got = _aws(
        secured_server, tmp_path, "receive-message", "--queue-url", url,
        "--attribute-names", "All", "--wait-time-seconds", "1",
    )  # fmt: skip
    [msg] = got["Messages"]
    assert msg["MessageId"] == sent["MessageId"] and msg["Body"] == "from the CLI"
    _aws(
        secured_server, tmp_path, "delete-message", "--queue-url", url,
        "--receipt-handle", msg["ReceiptHandle"],
    )  # fmt: skip
    admin = sqs_client(secured_server, "admin", ADMIN)
    attrs = admin.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    assert attrs["Attributes"] == {"ApproximateNumberOfMessagesNotVisible": "0"}
