"""The AWS JSON 1.0 protocol of SQS: ``POST /`` with ``X-Amz-Target:
AmazonSQS.<Action>`` and a JSON body, answered in JSON (``application/x-amz-json-1.0``).

The endpoint authenticates the request (Signature V4 against the server's
tokens; any or no credentials on an open server), checks the action's scope,
runs the action and turns every error into SQS's error document. A request
that carries an ``Origin`` other than this server's is refused (browsers send
it; SDKs do not), and ``X-Amz-Target`` is required, which a web page cannot
send without a CORS preflight, so another site cannot drive the endpoint.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ...model.errors import (
    BackendError,
    ConfigurationError,
    NotSupported,
    QueueNotFound,
    SerializationError,
)
from .._routing import HttpProblem, Settings, same_origin
from ._call import ACTIONS, Call, SqsState
from ._errors import SqsError, error
from ._sigv4 import parse_authorization, verify

__all__ = ["CONTENT_TYPE", "new_state", "sqs_endpoint", "too_large"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.0"
TARGET_PREFIX = "AmazonSQS."
DEFAULT_REGION = "us-east-1"


def _answer(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return JSONResponse(
        body,
        status_code=status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-requestid": str(uuid.uuid4()), **headers},
    )


def _error_answer(exc: Exception) -> Response:
    if not isinstance(exc, SqsError):
        exc = _translate(exc)
    return _answer(exc.body(), exc.status, **exc.headers())


def too_large(target: str, detail: str) -> Response:
    """The answer to an SQS call whose body is over the server's size limit."""
    batch = target.endswith("Batch")
    return _error_answer(
        error("BatchRequestTooLong" if batch else "InvalidParameterValue", detail)
    )


def _translate(exc: Exception) -> SqsError:
    if isinstance(exc, HttpProblem) and exc.status == 413:
        return error("InvalidParameterValue", exc.detail)
    if isinstance(exc, QueueNotFound):
        return error("QueueDoesNotExist", "The specified queue does not exist.")
    if isinstance(exc, NotSupported):
        return error("UnsupportedOperation", str(exc))
    if isinstance(exc, (ConfigurationError, SerializationError, ValueError)):
        return error("InvalidParameterValue", str(exc))
    if isinstance(exc, BackendError):
        log.warning("backend error: %s", exc)
        return error("ServiceUnavailable", str(exc))
    log.exception("unexpected error in an SQS call", exc_info=exc)
    return error("InternalFailure", "internal error: see the server log")


def _headers(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


def _region(request: Request) -> str:
    auth = request.headers.get("authorization")
    if auth:
        try:
            return parse_authorization(auth).region
        except SqsError:
            pass
    return DEFAULT_REGION


async def _call(request: Request, body: bytes) -> Call:
    settings: Settings = request.app.state.settings
    region, token, sender = _region(request), None, "anonymous"
    if not settings.open:
        token, signed = verify(
            settings.tokens,
            method=request.method,
            raw_path=request.scope.get("raw_path", b"/").decode("latin-1"),
            query=request.scope.get("query_string", b"").decode("latin-1"),
            headers=_headers(request),
            body=body,
        )
        region, sender = signed.region, signed.access_key
    base = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    return Call(
        request.app.state.client, request.app.state.sqs, token, region, base, sender
    )


def _params(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        raise error("SerializationException", "the request body must be a JSON object")
    return data


async def sqs_endpoint(request: Request) -> Response:
    """Serve one SQS call."""
    try:
        if request.headers.get("origin") is not None and not same_origin(request):
            raise error("AccessDenied", "cross-site requests are refused")
        target = request.headers.get("x-amz-target", "")
        if not target.startswith(TARGET_PREFIX):
            raise error(
                "InvalidAction",
                "this endpoint speaks SQS's AWS JSON 1.0 protocol: send "
                "X-Amz-Target: AmazonSQS.<Action> (boto3 >= 1.28.82, AWS CLI, "
                "current AWS SDKs)",
            )
        body = await request.body()
        call = await _call(request, body)
        name = target.removeprefix(TARGET_PREFIX)
        if name not in ACTIONS:
            raise error(
                "InvalidAction", f"The action {name} is not valid for this endpoint."
            )
        scope, handler = ACTIONS[name]
        if scope != "any":
            call.need(scope)
        return _answer(await handler(call, _params(body)))
    except Exception as exc:
        return _error_answer(exc)


def new_state() -> SqsState:
    """The endpoint's per-process state (kept in ``app.state.sqs``)."""
    return SqsState()
