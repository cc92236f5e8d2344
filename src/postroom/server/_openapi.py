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

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{(\w+)}")
_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, bad receipt).",
    401: "Missing or invalid bearer token.",
    403: "The token lacks the scope or does not cover the queue.",
    404: "Unknown queue, dead letter or subscription.",
    409: "The lease was lost: the message was delivered again.",
    413: "The body or batch is too large.",
    422: "The request does not validate.",
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


def _json(ref: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": ref}}}


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in _PARAM.findall(op.path)
    ]
    if op.query is not None:
        params += _query_parameters(op.query)
    problem = schemas.ref(Problem)
    responses: dict[str, Any] = {
        str(op.status): {"description": "Success", **_json(schemas.ref(op.response))}
    }
    codes = set(op.errors)
    if op.body is not None or op.query is not None:
        codes |= {422}
    if op.body is not None:
        codes |= {400, 413}
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
