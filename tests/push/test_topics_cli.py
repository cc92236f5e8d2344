"""The topic commands: publish, topics, subscriptions create|list|delete."""

from __future__ import annotations

import json
import uuid

import pytest

import postroom
from postroom.cli import main


@pytest.fixture
def url() -> str:
    """A fresh in-process backend shared by the commands of one test."""
    return f"memory://cli-{uuid.uuid4().hex[:12]}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main(list(argv))
    return capsys.readouterr().out


def test_cli_subscriptions_create_list_publish_topics_delete(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(
        capsys,
        "subscriptions", "create", "orders", "hook", "--url", url,
        "--push-endpoint", "https://example.com/h", "--filter", "region=eu",
        "--max-attempts", "3",
    )  # fmt: skip
    with postroom.connect(url) as client:
        sub = client.subscription("orders", "hook")
    assert sub.secret and f"secret: {sub.secret}" in out
    assert sub.filter == {"region": "eu"} and sub.max_attempts == 3

    listed = json.loads(run(capsys, "subscriptions", "list", "--url", url, "--json"))
    assert [(s["name"], s["secret"]) for s in listed] == [("hook", None)]
    assert sub.secret not in run(
        capsys, "subscriptions", "list", "orders", "--url", url
    )

    eid = run(
        capsys, "publish", "orders", '{"n": 1}', "-H", "region=eu", "--url", url
    ).strip()
    run(capsys, "publish", "orders", "plain text", "--url", url)
    with postroom.connect(url) as client:
        [msg] = client.peek(sub.queue)
    assert msg.id == eid and msg.json() == {"n": 1}

    topics = json.loads(run(capsys, "topics", "--url", url, "--json"))
    assert topics == [
        {"topic": "orders", "subscriptions": 1, "published": 2, "unrouted": 1}
    ]

    run(capsys, "subscriptions", "delete", "orders", "hook", "--url", url, "--yes")
    with postroom.connect(url) as client:
        assert client.subscriptions() == []


def test_cli_rejects_bad_endpoint_and_unknown_subscription(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["subscriptions", "create", "t", "s", "--url", url,
              "--push-endpoint", "ftp://example.com/x"])  # fmt: skip
    assert exc.value.code == 1
    assert "http:// or https://" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["subscriptions", "delete", "t", "nope", "--url", url, "--yes"])
    assert exc.value.code == 1
    assert "'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["subscriptions", "create", "t", "s", "--url", url, "--filter", "bad"])
    assert exc.value.code == 2


def test_cli_prints_names_with_brackets_verbatim(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(capsys, "subscriptions", "create", "a[/b]", "c[red]", "--url", url)
    assert "subscription c[red] of a[/b]: queue a[/b]:c[red]" in out
    assert "a[/b]" in run(capsys, "topics", "--url", url)
    assert "c[red]" in run(capsys, "subscriptions", "list", "--url", url)
