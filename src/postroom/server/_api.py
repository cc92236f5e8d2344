"""The queue and message operations of the HTTP API."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request

from ..model.message import Delivery, ErrorInfo, QueuePolicy, now_ms
from ..model.retry import Backoff
from ._models import (
    BackoffModel,
    BatchAckRequest,
    BatchSendRequest,
    DeclareQueueRequest,
    ExtendRequest,
    ReceiptRequest,
    ReceiveRequest,
    RejectRequest,
    RetryRequest,
    SendRequest,
)
from ._receipts import HttpReceipt
from ._responses import (
    BatchAckResponse,
    BatchSendResponse,
    ExtendResponse,
    Health,
    Ok,
    PolicyModel,
    QueueDetail,
    QueueList,
    QueueStatsModel,
    ReceivedMessage,
    ReceiveResponse,
    SendResponse,
)
from ._routing import Api, Ctx, HttpProblem

__all__ = ["api"]

api = Api()
Q = "/v1/queues/{queue}"


@api.op("GET", "/healthz", scope="public", resource=None, response=Health, tag="meta")
async def healthz(ctx: Ctx, _: None) -> Health:
    """Whether the server and its backend answer."""
    await ctx.client.queues()
    return Health(status="ok", backend=ctx.client.url.split("://", 1)[0])


@api.op(
    "GET", "/v1/queues", scope="any", resource=None, response=QueueList, tag="queues"
)
async def list_queues(ctx: Ctx, _: None) -> QueueList:
    """Every queue the token covers, with depths and counters."""
    names = [n for n in await ctx.client.queues() if ctx.visible(n)]
    return QueueList(queues=await queue_stats(ctx, names))


async def queue_stats(ctx: Ctx, names: list[str]) -> list[QueueStatsModel]:
    """Stats and counters of ``names`` in two backend round trips. The counters
    are read first: an ack counted is then never shown still in flight."""
    if not names:
        return []
    counters = await ctx.client.counters(names)
    stats = await ctx.client.queue_stats(names)
    return [QueueStatsModel.of(s, counters.get(s.queue, {})) for s in stats]


def _policy_model(p: QueuePolicy) -> PolicyModel:
    return PolicyModel(
        max_attempts=p.max_attempts,
        visibility_timeout=p.visibility_timeout,
        backoff=BackoffModel(**p.backoff.to_dict()),
        dead_letter=p.dead_letter,
        dedup_window=p.dedup_window,
        rate_limit=p.rate_limit,
    )


@api.op("GET", Q, scope="any", response=QueueDetail, tag="queues", errors=(404,))
async def get_queue(ctx: Ctx, _: None) -> QueueDetail:
    """A queue's depths, counters and policy."""
    queue = ctx.params["queue"]
    policy = await ctx.client.queue_policy(queue)
    [stats] = await queue_stats(ctx, [queue])
    return QueueDetail(**stats.model_dump(), policy=_policy_model(policy))


@api.op(
    "PUT",
    Q,
    scope="admin",
    body=DeclareQueueRequest,
    response=QueueDetail,
    tag="queues",
)
async def declare_queue(ctx: Ctx, req: DeclareQueueRequest) -> QueueDetail:
    """Create a queue or update its policy (idempotent)."""
    queue = ctx.params["queue"]
    b = req.backoff or BackoffModel()
    await ctx.client.declare_queue(
        queue,
        max_attempts=req.max_attempts,
        visibility_timeout=req.visibility_timeout,
        backoff=Backoff(initial=b.initial, factor=b.factor, max=b.max, jitter=b.jitter),
        dead_letter=req.dead_letter,
        dedup_window=req.dedup_window,
        rate_limit=req.rate_limit,
    )
    return await get_queue(ctx, None)


@api.op(
    "POST", Q + "/messages", scope="send", body=SendRequest, response=SendResponse,
    status=201, tag="messages",
)  # fmt: skip
async def send(ctx: Ctx, req: SendRequest) -> SendResponse:
    """Send one message (creates the queue with the default policy if needed)."""
    mid = await ctx.client.send(
        ctx.params["queue"],
        req.payload(),
        delay=req.delay,
        headers=req.headers,
        dedup_key=req.dedup_key,
        group=req.group,
        priority=req.priority,
    )
    return SendResponse(id=mid)


@api.op(
    "POST", Q + "/messages:batch", scope="send", body=BatchSendRequest,
    response=BatchSendResponse, status=201, tag="messages", errors=(413,),
)  # fmt: skip
async def send_batch(ctx: Ctx, req: BatchSendRequest) -> BatchSendResponse:
    """Send several messages in one round trip."""
    if len(req.messages) > ctx.settings.max_batch:
        raise HttpProblem(
            413,
            f"a batch holds at most {ctx.settings.max_batch} messages "
            f"(got {len(req.messages)}): split it",
        )
    ids = await ctx.client.send_many(
        ctx.params["queue"],
        [m.payload() for m in req.messages],
        delay=req.delay,
        headers=req.headers,
        group=req.group,
        priority=req.priority,
    )
    return BatchSendResponse(ids=ids)


@api.op(
    "POST", Q + "/receive", scope="receive", body=ReceiveRequest,
    response=ReceiveResponse, tag="messages", errors=(404,),
)  # fmt: skip
async def receive(ctx: Ctx, req: ReceiveRequest) -> ReceiveResponse:
    """Lease up to ``max_messages``; ``wait`` long-polls up to 20 s."""
    got: list[Delivery] = []

    async def poll() -> None:
        got.extend(
            await ctx.client.receive(
                ctx.params["queue"],
                max_messages=req.max_messages,
                visibility_timeout=req.visibility_timeout,
                wait=req.wait,
            )
        )

    if req.wait > 0 and ctx.request is not None:
        if await _unless_disconnected(ctx.request, poll):
            # Nobody reads the answer: give back what was leased, uncounted.
            await ctx.client.release(got)
            return ReceiveResponse(messages=[])
    else:
        await poll()
    leased_at = now_ms()
    return ReceiveResponse(
        messages=[
            ReceivedMessage.of(
                d.message,
                receipt=HttpReceipt.from_delivery(d, leased_at).encode(),
                lease_expires_at=d.lease_expires_at,
            )
            for d in got
        ]
    )


async def _unless_disconnected(
    request: Request, job: Callable[[], Awaitable[None]]
) -> bool:
    """Run ``job``, cancelling it if the client goes away; whether it went away.

    A long poll nobody waits for any more would lease messages that then wait
    for their lease to expire.
    """
    failed: list[Exception] = []
    gone = False
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            nonlocal gone
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone = True
            tg.cancel_scope.cancel()

        async def run() -> None:
            try:
                await job()
            except Exception as exc:  # re-raised below, not as an ExceptionGroup
                failed.append(exc)
            tg.cancel_scope.cancel()

        tg.start_soon(watch)
        tg.start_soon(run)
    if failed:
        raise failed[0]
    return gone


def _receipt(ctx: Ctx, req: ReceiptRequest) -> HttpReceipt:
    rc = _decode(ctx, req.receipt)
    if req.id is not None and req.id != rc.message_id:
        raise HttpProblem(400, f"this receipt is for message {rc.message_id!r}")
    return rc


def _decode(ctx: Ctx, receipt: str) -> HttpReceipt:
    rc = HttpReceipt.decode(receipt)
    if rc.queue != ctx.params["queue"]:
        raise HttpProblem(
            400, f"this receipt is for queue {rc.queue!r}, not {ctx.params['queue']!r}"
        )
    return rc


# Receipts leased further from now than this are not timed: the client changed
# the lease time (receipts are not signed), or the clocks of two servers differ.
_SKEW_MS = 60_000
_LONGEST_HOLD_MS = 24 * 3600 * 1000


def _observe(ctx: Ctx, rc: HttpReceipt) -> None:
    held_ms = now_ms() - rc.leased_at_ms
    if -_SKEW_MS <= held_ms <= _LONGEST_HOLD_MS:
        ctx.state.metrics.observe_handler(rc.queue, max(0, held_ms) / 1000)


def _error(value: Any) -> ErrorInfo | str | None:
    if value is None or isinstance(value, str):
        return value
    return ErrorInfo(value.type, value.message, value.traceback)


_RECEIPT_ERRORS = (400, 404, 409)


@api.op(
    "POST", Q + "/ack", scope="receive", body=ReceiptRequest, response=Ok,
    tag="messages", errors=_RECEIPT_ERRORS,
)  # fmt: skip
async def ack(ctx: Ctx, req: ReceiptRequest) -> Ok:
    """Delete a received message (409 when its lease was lost)."""
    rc = _receipt(ctx, req)
    await ctx.client.ack(rc.delivery())
    _observe(ctx, rc)
    return Ok()


@api.op(
    "POST", Q + "/ack:batch", scope="receive", body=BatchAckRequest,
    response=BatchAckResponse, tag="messages", errors=(400, 413),
)  # fmt: skip
async def ack_batch(ctx: Ctx, req: BatchAckRequest) -> BatchAckResponse:
    """Delete several received messages in one round trip."""
    if len(req.receipts) > ctx.settings.max_batch:
        raise HttpProblem(
            413, f"at most {ctx.settings.max_batch} receipts per call: split them"
        )
    receipts = [_decode(ctx, r) for r in req.receipts]
    lost = await ctx.client.ack_many([rc.delivery() for rc in receipts])
    lost_ids = {d.id for d in lost}
    for rc in receipts:
        if rc.message_id not in lost_ids:
            _observe(ctx, rc)
    return BatchAckResponse(acked=len(receipts) - len(lost), lost=sorted(lost_ids))


@api.op(
    "POST", Q + "/retry", scope="receive", body=RetryRequest, response=Ok,
    tag="messages", errors=_RECEIPT_ERRORS,
)  # fmt: skip
async def retry(ctx: Ctx, req: RetryRequest) -> Ok:
    """Give a message back after ``delay`` (default: backoff); counts the attempt."""
    rc = _receipt(ctx, req)
    await ctx.client.retry(rc.delivery(), delay=req.delay, error=_error(req.error))
    _observe(ctx, rc)
    return Ok()


@api.op(
    "POST", Q + "/reject", scope="receive", body=RejectRequest, response=Ok,
    tag="messages", errors=_RECEIPT_ERRORS,
)  # fmt: skip
async def reject(ctx: Ctx, req: RejectRequest) -> Ok:
    """Move a received message to the dead letter queue at once."""
    rc = _receipt(ctx, req)
    await ctx.client.reject(rc.delivery(), _error(req.error) or "rejected")
    _observe(ctx, rc)
    return Ok()


@api.op(
    "POST", Q + "/extend", scope="receive", body=ExtendRequest,
    response=ExtendResponse, tag="messages", errors=_RECEIPT_ERRORS,
)  # fmt: skip
async def extend(ctx: Ctx, req: ExtendRequest) -> ExtendResponse:
    """Lease a received message for ``seconds`` more from now."""
    rc = _receipt(ctx, req)
    new = await ctx.client.extend(rc.delivery(), req.seconds)
    receipt = dataclasses.replace(rc, receipt=new.receipt)
    return ExtendResponse(
        receipt=receipt.encode(), lease_expires_at=new.lease_expires_at
    )
