"""Dead letters, purge, topics and subscriptions operations of the HTTP API."""

from __future__ import annotations

from ..model.signing import validate_endpoint
from ._api import api
from ._models import (
    DeadLetterQuery,
    PublishRequest,
    RedriveRequest,
    SubscriptionQuery,
    SubscriptionRequest,
)
from ._responses import (
    DeadLetterList,
    DeadLetterModel,
    Ok,
    PublishResponse,
    PurgeResponse,
    RedriveResponse,
    SubscriptionList,
    SubscriptionModel,
    TopicList,
    TopicModel,
)
from ._routing import Ctx, HttpProblem

__all__ = ["api"]

Q = "/v1/queues/{queue}"
DL = Q + "/dead-letters"
T = "/v1/topics/{topic}"


@api.op(
    "DELETE", Q + "/messages", scope="admin", response=PurgeResponse, tag="queues",
    errors=(404,),
)  # fmt: skip
async def purge_queue(ctx: Ctx, _: None) -> PurgeResponse:
    """Delete every message of a queue (not its dead letters)."""
    return PurgeResponse(purged=await ctx.client.purge(ctx.params["queue"]))


@api.op("DELETE", Q, scope="admin", response=Ok, tag="queues", errors=(404,))
async def delete_queue(ctx: Ctx, _: None) -> Ok:
    """Delete a queue with its messages, dead letters and policy."""
    await ctx.client.delete_queue(ctx.params["queue"])
    return Ok()


@api.op(
    "GET", DL, scope="admin", query=DeadLetterQuery, response=DeadLetterList,
    tag="dead letters", errors=(404,),
)  # fmt: skip
async def list_dead_letters(ctx: Ctx, q: DeadLetterQuery) -> DeadLetterList:
    """Dead letters of a queue, oldest first, filtered by reason or error text."""
    found = await ctx.client.dead_letters(
        ctx.params["queue"],
        limit=q.limit,
        reason=q.reason,
        error_contains=q.error_contains,
    )
    return DeadLetterList(dead_letters=[DeadLetterModel.of(d) for d in found])


@api.op(
    "GET", DL + "/{id}", scope="admin", response=DeadLetterModel, tag="dead letters",
    errors=(404,),
)  # fmt: skip
async def get_dead_letter(ctx: Ctx, _: None) -> DeadLetterModel:
    """One dead letter with its message, error and attempt history."""
    found = await ctx.client.dead_letter(ctx.params["queue"], ctx.params["id"])
    return DeadLetterModel.of(found)


@api.op(
    "POST", DL + ":redrive", scope="admin", body=RedriveRequest,
    response=RedriveResponse, tag="dead letters", errors=(403, 404),
)  # fmt: skip
async def redrive(ctx: Ctx, req: RedriveRequest) -> RedriveResponse:
    """Move dead letters back to their queue (or to ``to``): ``ids``, or
    ``"all": true`` (the oldest ``limit`` of them)."""
    if req.to is not None and not ctx.visible(req.to):
        raise HttpProblem(403, f"this token does not cover the target {req.to!r}")
    ids = await ctx.client.redrive(
        ctx.params["queue"],
        ids=req.ids,
        to=req.to,
        limit=req.limit,
        dry_run=req.dry_run,
    )
    return RedriveResponse(ids=ids, count=len(ids), dry_run=req.dry_run)


@api.op(
    "DELETE", DL, scope="admin", response=PurgeResponse, tag="dead letters",
    errors=(404,),
)  # fmt: skip
async def purge_dead_letters(ctx: Ctx, _: None) -> PurgeResponse:
    """Delete every dead letter of a queue."""
    return PurgeResponse(purged=await ctx.client.purge(ctx.params["queue"], dead=True))


@api.op(
    "GET", "/v1/topics", scope="any", resource=None, response=TopicList, tag="topics"
)
async def list_topics(ctx: Ctx, _: None) -> TopicList:
    """Every topic the token covers, with subscription and publish counts."""
    return TopicList(
        topics=[
            TopicModel.model_validate(t, from_attributes=True)
            for t in await ctx.client.topics()
            if ctx.visible(t.topic)
        ]
    )


@api.op(
    "POST", T + "/publish", scope="send", resource="topic", body=PublishRequest,
    response=PublishResponse, status=201, tag="topics",
)  # fmt: skip
async def publish(ctx: Ctx, req: PublishRequest) -> PublishResponse:
    """Publish an event: a copy goes into every matching subscription."""
    eid = await ctx.client.publish(ctx.params["topic"], req.payload(), req.headers)
    return PublishResponse(id=eid)


@api.op(
    "GET", "/v1/subscriptions", scope="admin", resource=None, query=SubscriptionQuery,
    response=SubscriptionList, tag="topics",
)  # fmt: skip
async def list_subscriptions(ctx: Ctx, q: SubscriptionQuery) -> SubscriptionList:
    """Subscriptions (of one ``topic``, or all), without their secrets."""
    subs = await ctx.client.subscriptions(q.topic)
    return SubscriptionList(
        subscriptions=[
            SubscriptionModel.of(s, secret=False) for s in subs if ctx.visible(s.topic)
        ]
    )


@api.op(
    "POST", T + "/subscriptions", scope="admin", resource="topic",
    body=SubscriptionRequest, response=SubscriptionModel, status=201, tag="topics",
)  # fmt: skip
async def create_subscription(ctx: Ctx, req: SubscriptionRequest) -> SubscriptionModel:
    """Create a subscription (idempotent by name); the answer shows its secret."""
    if req.push_endpoint is not None:
        validate_endpoint(req.push_endpoint)
        await ctx.state.egress.check_endpoint(req.push_endpoint)
    sub = await ctx.client.create_subscription(
        ctx.params["topic"],
        req.name,
        push_endpoint=req.push_endpoint,
        secret=req.secret,
        filter=req.filter,
        max_attempts=req.max_attempts,
        visibility_timeout=req.visibility_timeout,
    )
    return SubscriptionModel.of(sub, secret=True)


@api.op(
    "DELETE", T + "/subscriptions/{name}", scope="admin", resource="topic",
    response=Ok, tag="topics", errors=(404,),
)  # fmt: skip
async def delete_subscription(ctx: Ctx, _: None) -> Ok:
    """Delete a subscription and its queue."""
    await ctx.client.delete_subscription(ctx.params["topic"], ctx.params["name"])
    return Ok()
