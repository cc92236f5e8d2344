"""The OpenAPI 3.1 document, built from the operation registry and its models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from .. import __version__
from ._responses import (
    Problem,
)
from ._routing import Operation
from ._types import name_pattern

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{(\w+)}")
_DESCRIPTIONS = {
    400: "Malformed request: no body, not strict JSON, a bad receipt or name.",
    401: "Missing or invalid bearer token.",
    403: "The token lacks the scope or does not cover the queue.",
    404: "Unknown queue, dead letter or subscription.",
    409: "The lease was lost: the message was delivered again.",
    413: "The body or batch is too large.",
    415: "The body is not sent as application/json.",
    422: "The request does not validate.",
    501: "The backend does not support this operation (e.g. no worker registry).",
}

# OpenAPI links: how the answer of one operation feeds the next (what a client
# does, and what the stateful fuzzer follows: declare, send, receive, then ack,
# retry, reject or extend with the receipt; dead letters; subscriptions).
_Q = {"queue": "$request.path.queue"}
_RECEIPT = "$response.body#/messages/0/receipt"
_DEAD_ID = "$response.body#/dead_letters/0/id"
_TOPIC = {"topic": "$request.path.topic"}


def _link(op: str, params: dict[str, str], body: Any = None) -> dict[str, Any]:
    link: dict[str, Any] = {"operationId": op, "parameters": params}
    if body is not None:
        link["requestBody"] = body
    return link


LINKS: dict[str, dict[str, dict[str, Any]]] = {
    "declare_queue": {
        "GetQueue": _link("get_queue", _Q),
        "Send": _link("send", _Q),
        "SendBatch": _link("send_batch", _Q),
        "Receive": _link("receive", _Q),
    },
    "send": {
        "Receive": _link("receive", _Q),
        "GetQueue": _link("get_queue", _Q),
        "PurgeQueue": _link("purge_queue", _Q),
    },
    "send_batch": {"Receive": _link("receive", _Q)},
    "receive": {
        "Ack": _link("ack", _Q, {"receipt": _RECEIPT}),
        "AckBatch": _link("ack_batch", _Q, {"receipts": [_RECEIPT]}),
        "Retry": _link("retry", _Q, {"receipt": _RECEIPT, "delay": 0}),
        "Reject": _link("reject", _Q, {"receipt": _RECEIPT}),
        "Extend": _link("extend", _Q, {"receipt": _RECEIPT, "seconds": 30}),
    },
    "retry": {"Receive": _link("receive", _Q)},
    "reject": {"ListDeadLetters": _link("list_dead_letters", _Q)},
    "extend": {
        "Ack": _link("ack", _Q, {"receipt": "$response.body#/receipt"}),
    },
    "list_dead_letters": {
        "GetDeadLetter": _link("get_dead_letter", {**_Q, "id": _DEAD_ID}),
        "Redrive": _link("redrive", _Q, {"ids": [_DEAD_ID]}),
        "PurgeDeadLetters": _link("purge_dead_letters", _Q),
    },
    "redrive": {"Receive": _link("receive", _Q)},
    "create_subscription": {
        "Publish": _link("publish", _TOPIC),
        "ReceiveEvents": _link("receive", {"queue": "$response.body#/queue"}),
        "DeleteSubscription": _link(
            "delete_subscription", {**_TOPIC, "name": "$response.body#/name"}
        ),
    },
}


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=_REF)
        for name, sub in schema.pop("$defs", {}).items():
            self.components[name] = sub
        self.components[model.__name__] = schema
        return {"$ref": _REF.format(model=model.__name__)}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _path_schema(param: str) -> dict[str, Any]:
    """A path parameter: a name as the server's name check accepts it."""
    if param == "id":
        return {"type": "string", "minLength": 1, "maxLength": 200}
    schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}
    # A new subscription's topic and name may not hold ':' (their queue is
    # 'topic:name'); a topic in the path is always one of those.
    schema["pattern"] = name_pattern(":" if param in ("topic", "name") else "")
    return schema


def _json(ref: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": ref}}}


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": _path_schema(n)}
        for n in _PARAM.findall(op.path)
    ]
    if op.query is not None:
        params += _query_parameters(op.query)
    problem = schemas.ref(Problem)
    responses: dict[str, Any] = {
        str(op.status): {"description": "Success", **_json(schemas.ref(op.response))}
    }
    if op.name in LINKS:
        responses[str(op.status)]["links"] = LINKS[op.name]
    codes = set(op.errors)
    if op.body is not None or op.query is not None:
        codes |= {422}
    if op.body is not None:
        codes |= {400, 413, 415}
    if op.query is not None or "{" in op.path:
        codes |= {400}  # a name or text the server's checks refuse
    if op.scope != "public":
        codes |= {401, 403}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _DESCRIPTIONS[code],
            **_json(problem, "application/problem+json"),
        }
    doc: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        doc["requestBody"] = {"required": True, **_json(schemas.ref(op.body))}
    if op.scope == "public":
        doc["security"] = []
    else:
        doc["description"] = f"Needs a token with scope `{op.scope}`" + (
            f" covering `{op.resource}`." if op.resource else "."
        )
    return doc


def openapi_document(operations: list[Operation], *, secured: bool) -> dict[str, Any]:
    """The OpenAPI document of ``operations``."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "postroom",
            "version": __version__,
            "description": "Queues, dead letters and topics over HTTP.",
        },
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.components.items()))},
    }
    if secured:
        doc["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        doc["security"] = [{"bearer": []}]
    return doc
