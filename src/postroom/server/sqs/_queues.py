"""The queue actions: create, find, list, delete, attributes, purge, tags."""

from __future__ import annotations

import contextlib
import json
import re
import time
from typing import Any

from ...model.errors import QueueNotFound
from ...model.message import QueuePolicy
from ._attributes import (
    COUNTS,
    DLQ_MARK,
    NO_LIMIT,
    TAGS,
    describe,
    parse_redrive,
    policy_fields,
    redrive_allowed,
    requested_names,
    validate,
)
from ._call import Call, action
from ._errors import error
from ._fifo import check_name, fifo_defaults, is_fifo

__all__: list[str] = []

# SQS names: 1-80 of letters, digits, '-' and '_'. postroom names may also hold
# '.' (images.resize), which the endpoint accepts too.
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def _attributes_param(params: dict[str, Any]) -> dict[str, Any]:
    attrs = params.get("Attributes") or {}
    if not isinstance(attrs, dict):
        raise error("InvalidParameterValue", "Attributes must be a map")
    return attrs


async def _check_redrive(call: Call, queue: str, stored: dict[str, str]) -> None:
    redrive = parse_redrive(stored.get("RedrivePolicy", ""))
    if redrive is None:
        return
    call.cover(redrive.target)
    try:
        target = await call.client.queue_policy(redrive.target)
    except QueueNotFound:
        raise error(
            "InvalidParameterValue",
            f"Value {stored['RedrivePolicy']} for parameter RedrivePolicy is "
            "invalid. Reason: Dead letter target does not exist.",
        ) from None
    if is_fifo(target) != (stored.get("FifoQueue") == "true"):
        raise error(
            "InvalidParameterValue",
            f"Value {stored['RedrivePolicy']} for parameter RedrivePolicy is "
            "invalid. Reason: Dead-letter queue must be same type of queue as the "
            "source.",
        )
    if not redrive_allowed(
        target.attributes.get("RedriveAllowPolicy"), call.arn(queue)
    ):
        raise error(
            "InvalidParameterValue",
            f"the RedriveAllowPolicy of {redrive.target!r} does not allow {queue!r} "
            "as a source",
        )
    if DLQ_MARK not in target.attributes:
        marked = {**target.attributes, DLQ_MARK: "1"}
        fields = policy_fields(target, marked, redrive.target, touch=False)
        await call.client.declare_queue(redrive.target, **fields)


async def _store(
    call: Call, queue: str, current: QueuePolicy, stored: dict[str, str]
) -> None:
    await _check_redrive(call, queue, stored)
    await call.client.declare_queue(queue, **policy_fields(current, stored, queue))
    call.state.forget_sources()


@action("CreateQueue", "admin")
async def create_queue(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Create a queue, or return the URL of one with the same attributes."""
    name = params.get("QueueName")
    if not isinstance(name, str) or not _NAME.match(name):
        raise error(
            "InvalidParameterValue",
            "Can only include alphanumeric characters, hyphens, underscores or "
            "dots. 1 to 80 in length",
        )
    call.cover(name)
    attributes = _attributes_param(params)
    fifo = str(attributes.get("FifoQueue", "false")).lower() == "true"
    given = validate(attributes, creating=True, fifo=fifo)
    if given.get("FifoQueue") == "false":  # a standard queue stores no FifoQueue
        del given["FifoQueue"]
    check_name(name, fifo)
    if fifo and not call.client.capabilities.groups:
        raise error(
            "InvalidAttributeValue",
            f"FIFO queues need message groups, which {call.client.url.split(':')[0]}"
            ":// does not have (see docs/sqs.md)",
        )
    try:
        existing = await call.client.queue_policy(name)
    except QueueNotFound:
        existing = None
    if existing is not None:
        same = all(
            describe(existing, "", {}, [k]).get(k, "") == v for k, v in given.items()
        )
        if not same:
            raise error(
                "QueueNameExists",
                f"A queue already exists with the same name and a different "
                f"value for attribute(s) {', '.join(sorted(given))}",
            )
        return {"QueueUrl": call.url(name)}
    now = str(int(time.time()))
    stored = {**given, "CreatedTimestamp": now}
    if fifo:  # the FIFO attributes not given take their defaults
        stored.update(fifo_defaults(given))
    tags = params.get("tags") or {}
    if tags:
        stored[TAGS] = json.dumps(tags)
    await _store(call, name, QueuePolicy(max_attempts=NO_LIMIT), stored)
    return {"QueueUrl": call.url(name)}


@action("GetQueueUrl", "any")
async def get_queue_url(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """The URL of an existing queue."""
    name = params.get("QueueName")
    if not isinstance(name, str) or not name:
        raise error("MissingParameter", "The request must contain QueueName.")
    call.cover(name)
    await call.policy(name)
    return {"QueueUrl": call.url(name)}


def _page(params: dict[str, Any], names: list[str]) -> tuple[list[str], str | None]:
    limit = params.get("MaxResults")
    token = params.get("NextToken")
    if token is not None:
        names = [n for n in names if n > str(token)]
    if limit is None:
        return names[:1000], None
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise error("InvalidParameterValue", "MaxResults must be 1 to 1000")
    more = len(names) > limit
    return names[:limit], (names[limit - 1] if more else None)


@action("ListQueues", "any")
async def list_queues(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Queue URLs, by name prefix, a page at a time (NextToken is the last name)."""
    prefix = str(params.get("QueueNamePrefix") or "")
    names = [
        n
        for n in await call.client.queues()
        if n.startswith(prefix) and call.visible(n)
    ]
    page, token = _page(params, names)
    out: dict[str, Any] = {"QueueUrls": [call.url(n) for n in page]}
    if token is not None:
        out["NextToken"] = token
    return out


@action("DeleteQueue", "admin")
async def delete_queue(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Delete a queue with its messages and dead letters."""
    name = call.queue_name(params)
    try:
        await call.client.delete_queue(name)
    except QueueNotFound:
        raise error(
            "QueueDoesNotExist", "The specified queue does not exist."
        ) from None
    call.state.forget_sources()
    return {}


@action("GetQueueAttributes", "any")
async def get_queue_attributes(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Attribute values, the Approximate* counts read from the backend."""
    name, policy = await call.queue(params)
    names = requested_names(params.get("AttributeNames") or [])
    counts: dict[str, int] = {}
    if any(n in COUNTS for n in names):
        stats = await call.client.stats(name)
        ready = stats.ready + await call.pending_dead(name, policy)
        values = (ready, stats.in_flight, stats.delayed)
        counts = dict(zip(COUNTS, values, strict=True))
    return {"Attributes": describe(policy, call.arn(name), counts, names)}


@action("SetQueueAttributes", "admin")
async def set_queue_attributes(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Change attributes; an empty RedrivePolicy removes it."""
    name, policy = await call.queue(params)
    given = validate(_attributes_param(params), creating=False, fifo=is_fifo(policy))
    stored = {**policy.attributes, **given}
    stored = {k: v for k, v in stored.items() if v != ""}
    await _store(call, name, policy, stored)
    return {}


@action("PurgeQueue", "admin")
async def purge_queue(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Delete every message of a queue (and the dead letters bound for it)."""
    name, policy = await call.queue(params)
    for source in await call.bound_sources(name, policy):
        with contextlib.suppress(QueueNotFound):
            await call.client.purge(source, dead=True)
    await call.client.purge(name)
    return {}


@action("ListDeadLetterSourceQueues", "any")
async def list_dead_letter_sources(
    call: Call, params: dict[str, Any]
) -> dict[str, Any]:
    """Queues whose RedrivePolicy targets this one."""
    name, _ = await call.queue(params)
    call.state.forget_sources()
    sources = [s for s in await call.dead_letter_sources(name) if call.visible(s)]
    page, token = _page(params, sorted(sources))
    out: dict[str, Any] = {"queueUrls": [call.url(s) for s in page]}
    if token is not None:
        out["NextToken"] = token
    return out


async def _tags(
    call: Call, params: dict[str, Any]
) -> tuple[str, QueuePolicy, dict[str, str]]:
    name, policy = await call.queue(params)
    return name, policy, json.loads(policy.attributes.get(TAGS, "{}"))


@action("ListQueueTags", "any")
async def list_queue_tags(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """The queue's tags (kept with its attributes)."""
    _, _, tags = await _tags(call, params)
    return {"Tags": tags} if tags else {}


@action("TagQueue", "admin")
async def tag_queue(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Add or replace tags."""
    name, policy, tags = await _tags(call, params)
    new = params.get("Tags") or {}
    if not isinstance(new, dict) or len({**tags, **new}) > 50:
        raise error("InvalidParameterValue", "Tags must be a map of at most 50 tags")
    stored = {**policy.attributes, TAGS: json.dumps({**tags, **new})}
    await call.client.declare_queue(name, **policy_fields(policy, stored, name))
    return {}


@action("UntagQueue", "admin")
async def untag_queue(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Remove tags by key."""
    name, policy, tags = await _tags(call, params)
    for key in params.get("TagKeys") or []:
        tags.pop(str(key), None)
    stored = {**policy.attributes, TAGS: json.dumps(tags)}
    await call.client.declare_queue(name, **policy_fields(policy, stored, name))
    return {}


@action("AddPermission", "admin")
@action("RemovePermission", "admin")
async def permissions(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Not supported: access is the server's tokens."""
    raise error(
        "UnsupportedOperation",
        "postroom's SQS endpoint grants access with the server's tokens (scopes "
        "and queue patterns), not with SQS permissions",
    )
