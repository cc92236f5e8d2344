"""Topic commands: ``publish``, ``topics`` and ``subscriptions create|list|delete``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.box import SIMPLE_HEAD
from rich.table import Table

from ..model.message import Subscription
from ._bodies import Raw, parse_body
from ._common import (
    Json,
    Url,
    Yes,
    confirm,
    console,
    open_client,
    print_json,
    print_table,
    safe,
    safe_text,
)

__all__ = ["register"]

subscriptions_app = typer.Typer(
    name="subscriptions",
    help="Subscriptions of topics: create, list, delete.",
    no_args_is_help=True,
)

Topic = Annotated[str, typer.Argument(help="Topic name, e.g. images.resized.")]
Name = Annotated[str, typer.Argument(help="Subscription name, e.g. cache.")]


def register(app: typer.Typer) -> None:
    """Add ``publish``, ``topics`` and the ``subscriptions`` group to ``app``."""
    app.command("publish")(publish)
    app.command("topics")(topics)
    app.add_typer(subscriptions_app, name="subscriptions")


def say(text: str) -> None:
    """Print plain text: names may contain ``[`` that rich would take for markup,
    or control characters (escaped)."""
    console.print(safe(text, lines=True), markup=False, highlight=False)


def _pairs(values: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; a malformed one is a usage error."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def _check_pairs(values: list[str] | None) -> list[str] | None:
    _pairs(values)
    return values


def publish(
    topic: Topic,
    body: Annotated[
        str,
        typer.Argument(
            help="Event body: JSON if it parses as JSON, else a string; "
            "'-' reads it from stdin."
        ),
    ],
    raw_text: Raw = False,
    header: Annotated[
        list[str] | None,
        typer.Option(
            "--header",
            "-H",
            metavar="KEY=VALUE",
            help="An event header, matched by subscription filters (repeatable).",
            callback=_check_pairs,
        ),
    ] = None,
    url: Url = None,
) -> None:
    """Publish an event to TOPIC (a copy per matching subscription); print its id."""
    raw = sys.stdin.buffer.read() if body == "-" else body.encode("utf-8")
    with open_client(url) as client:
        eid = client.publish(
            topic, parse_body(raw, raw_text=raw_text), headers=_pairs(header)
        )
    typer.echo(eid)


def topics(url: Url = None, as_json: Json = False) -> None:
    """List topics with their subscriptions and publish counts."""
    with open_client(url) as client:
        rows = client.topics()
    if as_json:
        print_json(
            [
                {
                    "topic": t.topic,
                    "subscriptions": t.subscriptions,
                    "published": t.published,
                    "unrouted": t.unrouted,
                }
                for t in rows
            ]
        )
        return
    if not rows:
        console.print("no topics yet: `postroom subscriptions create TOPIC NAME`")
        return
    table = Table("topic", "subscriptions", "published", "unrouted", box=SIMPLE_HEAD)
    for t in rows:
        table.add_row(
            safe_text(t.topic),
            str(t.subscriptions),
            str(t.published),
            str(t.unrouted),
        )
    print_table(table)


@subscriptions_app.command("create")
def create(
    topic: Topic,
    name: Name,
    push_endpoint: Annotated[
        str | None,
        typer.Option(
            "--push-endpoint",
            metavar="URL",
            help="POST each event to this http(s) URL (a webhook).",
        ),
    ] = None,
    filter: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            metavar="KEY=VALUE",
            help="Only events whose header KEY equals VALUE (repeatable: all match).",
            callback=_check_pairs,
        ),
    ] = None,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, help="Attempts before dead letter.")
    ] = 5,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Create subscription NAME of TOPIC (idempotent); prints a webhook's secret."""
    with open_client(url) as client:
        sub = client.create_subscription(
            topic,
            name,
            push_endpoint=push_endpoint,
            filter=_pairs(filter) or None,
            max_attempts=max_attempts,
        )
    if as_json:
        print_json(sub.to_dict())
        return
    say(f"subscription {sub.name} of {sub.topic}: queue {sub.queue}")
    if sub.push_endpoint:
        say(f"pushes to {sub.push_endpoint}")
        say(
            f"secret: {sub.secret}\n"
            "keep it: it is shown only now; receivers verify the Postroom-Signature "
            "header with it (postroom.verify_signature)"
        )


def _filter_text(sub: Subscription) -> str:
    if not sub.filter:
        return "-"
    return ",".join(f"{k}={v}" for k, v in sorted(sub.filter.items()))


@subscriptions_app.command("list")
def list_(
    topic: Annotated[
        str | None, typer.Argument(help="Only this topic's subscriptions.")
    ] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """List subscriptions (secrets are never shown)."""
    with open_client(url) as client:
        subs = client.subscriptions(topic)
    if as_json:
        print_json([s.to_dict(include_secret=False) for s in subs])
        return
    if not subs:
        console.print("no subscriptions")
        return
    table = Table(
        "topic",
        "name",
        "queue",
        "push endpoint",
        "filter",
        "max attempts",
        box=SIMPLE_HEAD,
    )
    for s in subs:
        table.add_row(
            safe_text(s.topic),
            safe_text(s.name),
            safe_text(s.queue),
            safe_text(s.push_endpoint or "-"),
            safe_text(_filter_text(s)),
            str(s.max_attempts),
        )
    print_table(table)


@subscriptions_app.command("delete")
def delete(topic: Topic, name: Name, url: Url = None, yes: Yes = False) -> None:
    """Delete subscription NAME of TOPIC, with its queue and dead letters."""
    with open_client(url) as client:
        client.subscription(topic, name)  # a clear error when it does not exist
        confirm(
            f"Delete subscription {name!r} of {topic!r} and every message in it?", yes
        )
        client.delete_subscription(topic, name)
    say(f"deleted subscription {name} of {topic}")
