"""OpenAPI 3.1 document built from the endpoints and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from flowboard import __version__
from flowboard.api.endpoint import Endpoint
from flowboard.api.schemas import ErrorResponse
from flowboard.nodes.registry import NODE_TYPES

Mode = Literal["validation", "serialization"]
REF = "#/components/schemas/{model}"
# aiohttp's "{key:.+}" (a parameter with its own regex) is "{key}" in an OpenAPI path.
_ROUTE_PARAM = re.compile(r"\{(\w+):[^}]+\}")


def _schemas(endpoints: Sequence[Endpoint]) -> tuple[dict[Any, Any], dict[str, Any]]:
    wanted: list[tuple[type[BaseModel], Mode]] = [(ErrorResponse, "serialization")]
    for ep in endpoints:
        if ep.request is not None:
            wanted.append((ep.request, "validation"))
        if ep.response is not None:
            wanted.append((ep.response, "serialization"))
        wanted += [(model, "serialization") for _, model, _ in ep.also if model is not None]
    wanted += [(t.data_model, "validation") for t in NODE_TYPES.values()]
    unique = list(dict.fromkeys(wanted))
    refs, doc = models_json_schema(unique, ref_template=REF)
    return refs, doc.get("$defs", {})


def _ref(refs: dict[Any, Any], model: type[BaseModel], mode: Mode) -> dict[str, Any]:
    return dict(refs[(model, mode)])


def _error_body(refs: dict[Any, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(refs, ErrorResponse, "serialization")}}}


def _errors(refs: dict[Any, Any]) -> dict[str, Any]:
    body = _error_body(refs)
    return {
        str(code): {"description": text, **body}
        for code, text in (
            (400, "Bad request"),
            (401, "Missing, malformed, expired or revoked credential"),
            (404, "Not found"),
            (409, "Revision conflict"),
            (413, "Body too large"),
            (415, "Unsupported media type"),
            (422, "Invalid input"),
        )
    }


def _operation(ep: Endpoint, refs: dict[Any, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": ep.summary}
    if ep.response is not None:
        schema = _ref(refs, ep.response, "serialization")
        ok["content"] = {ep.content_type: {"schema": schema}}
    elif ep.content_type != "application/json":
        ok["content"] = {ep.content_type: {"schema": {"type": "string"}}}
    op: dict[str, Any] = {
        "summary": ep.summary,
        "operationId": ep.handler.__name__,
        "tags": [ep.tag],
        "responses": {str(ep.status): ok, **_errors(refs)},
        "parameters": [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": {"type": p.schema_type},
            }
            for p in ep.params
        ],
    }
    if ep.public:
        op["security"] = []  # no credential needed
    if ep.rate_limited:
        op["responses"]["429"] = {
            "description": "Too many run requests of this caller (see Retry-After)",
            **_error_body(refs),
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
        }
    if ep.database:
        op["responses"]["503"] = {
            "description": "The database is not answering (database_unavailable; see Retry-After)",
            **_error_body(refs),
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
        }
    if ep.needs_space:
        op["responses"]["507"] = {
            "description": "Free disk space is below the floor (insufficient_storage)",
            **_error_body(refs),
        }
    for status, model, text in ep.also:
        body = (
            {"content": {"application/json": {"schema": _ref(refs, model, "serialization")}}}
            if model is not None
            else _error_body(refs)
        )
        op["responses"][str(status)] = {"description": text, **body}
    if ep.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(refs, ep.request, "validation")}},
        }
    return op


def _node_types(refs: dict[Any, Any]) -> dict[str, Any]:
    """Each node type's data schema and whether it runs (the canvas page builds its forms)."""
    return {
        name: {
            "data": _ref(refs, t.data_model, "validation"),
            "runnable": t.runnable,
            "media": t.generation.media.value if t.generation is not None else None,
        }
        for name, t in sorted(NODE_TYPES.items())
    }


def build_openapi(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    refs, components = _schemas(endpoints)
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        path = _ROUTE_PARAM.sub(r"{\1}", ep.path)
        paths.setdefault(path, {})[ep.method.lower()] = _operation(ep, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Flowboard", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "x-node-types": _node_types(refs),
    }


OPENAPI_DOCUMENT: web.AppKey[dict[str, Any]] = web.AppKey("openapi_document")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_DOCUMENT])


OPENAPI_ENDPOINT = Endpoint(
    "GET", "/api/openapi.json", openapi, "This document", "meta", public=True, database=False
)
