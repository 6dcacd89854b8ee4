"""The OpenAPI 3.1 document, derived from the route declarations (never hand-written).

Paths, operations, parameters and request bodies come from :data:`node.http._api.API_ROUTES`
and their request dataclasses (:func:`node.http._codec.request_schema`, the same
metadata the decoder enforces); answers from the protobuf messages the routes
return (:func:`node.http._codec.message_schema`, the same walk the encoder
does); the trust files from :data:`node.http._trust.TRUST_FILES`; every refusal
is the one error body.  Served at ``/openapi.json`` on each listener, listing
that listener's operations.  The browser flows under ``/auth/`` (forms and
redirects) and the pages are not part of the API and not listed.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from node.http._api import API_ROUTES, CITIZEN, CLIENT, PUBLIC, ApiRoute
from node.http._codec import field_schema, message_schema, request_schema
from node.http._context import IF_NONE_MATCH_MAX, HttpContext, cached_response
from node.http._trust import TABLE_FILE_PATH, TABLE_FILES, TABLE_SEGMENT_MAX, TRUST_FILES

__all__ = ["ERROR_SCHEMA", "openapi_document", "openapi_route"]

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every refusal: the same reason codes as the gRPC API (huxin-reason).",
    "properties": {
        "code": {"type": "string", "description": "the gRPC status name"},
        "reason": {"type": "string", "description": "the stable reason"},
        "field": {"type": "string", "description": "the offending field, or empty"},
        "message": {"type": "string"},
    },
    "required": ["code", "reason", "field", "message"],
    "additionalProperties": False,
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    CITIZEN: [{"identityAssertion": []}, {"session": [], "csrfToken": []}],
    CLIENT: [{"clientCertificate": []}],
    PUBLIC: [],
}


def _version() -> str:
    try:
        return version("huxin")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return "0"


def _errors() -> dict[str, Any]:
    return {
        "default": {
            "description": "a refusal",
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
    }


def _operation(route: ApiRoute, refs: dict[str, Any]) -> dict[str, Any]:
    refs[route.response.DESCRIPTOR.full_name] = route.response.DESCRIPTOR
    op: dict[str, Any] = {
        "operationId": route.operation,
        "summary": route.summary,
        "security": _SECURITY[route.auth],
        "responses": {
            "200": {
                "description": "the answer (as the gRPC message of the same name)",
                "content": {
                    "application/json": {
                        "schema": {
                            "$ref": f"#/components/schemas/{route.response.DESCRIPTOR.full_name}"
                        }
                    }
                },
            },
            **_errors(),
        },
    }
    if route.in_query:
        params = [
            {"name": f.name, "in": "query", "required": False, "schema": field_schema(f)}
            for f in dataclasses.fields(route.request)
        ]
        if params:
            op["parameters"] = params
    else:
        op["requestBody"] = {
            # the decoder reads an empty body as {} (every member has its default)
            "required": False,
            "content": {"application/json": {"schema": request_schema(route.request)}},
        }
    return op


_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": IF_NONE_MATCH_MAX},
}


def _trust_get(
    operation: str, summary: str, types: list[str], params: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "security": [],
            "parameters": [*params, _IF_NONE_MATCH],
            "responses": {
                "200": {
                    "description": "the file (strong ETag, Cache-Control)",
                    "headers": {
                        "ETag": {"schema": {"type": "string"}},
                        "Cache-Control": {"schema": {"type": "string"}},
                    },
                    "content": {t: {"schema": {}} for t in types},
                },
                "304": {"description": "not modified (If-None-Match matched the ETag)"},
                **_errors(),
            },
        }
    }


def _trust_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for f in TRUST_FILES:
        name = f.path.rsplit("/", 1)[1].replace(".", "_").replace("-", "_")
        paths[f.path] = _trust_get("trust_" + name, f.summary, [f.content_type], [])
    segment = {"type": "string", "maxLength": TABLE_SEGMENT_MAX}
    params = [
        {"name": "id", "in": "path", "required": True, "schema": segment},
        {"name": "version", "in": "path", "required": True, "schema": segment},
        {"name": "name", "in": "path", "required": True,
         "schema": {"type": "string", "enum": sorted(TABLE_FILES)}},
    ]  # fmt: skip
    paths[TABLE_FILE_PATH] = _trust_get(
        "trust_mapping_table_file",
        "An approved mapping table's canonical bytes or its signed approval (H13)",
        sorted(set(TABLE_FILES.values())),
        params,
    )
    return paths


def openapi_document(listener: str, region: str) -> dict[str, Any]:
    """The document of one listener (``"citizen"`` or ``"mtls"``)."""
    kinds = {CITIZEN, PUBLIC} if listener == "citizen" else {CLIENT}
    refs: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for route in API_ROUTES:
        if route.auth in kinds:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    if listener == "citizen":
        paths.update(_trust_paths())
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    pending = dict(refs)
    while pending:
        name, descriptor = pending.popitem()
        if name in schemas:
            continue
        found: dict[str, Any] = {}
        schemas[name] = message_schema(descriptor, found)
        pending.update({k: v for k, v in found.items() if k not in schemas})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"Huxin node {region}: {'citizen' if listener == 'citizen' else 'integrator'} HTTPS API",
            "version": _version(),
            "description": "Derived from the node's route declarations (docs/adr/0800).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "identityAssertion": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a signed identity assertion (base64), each accepted once",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "huxin_session"},
                "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                "clientCertificate": {"type": "mutualTLS"},
            },
        },
    }


@cache
def _encoded(listener: str, region: str) -> bytes:
    import json

    return json.dumps(openapi_document(listener, region), ensure_ascii=False, indent=1).encode()


def openapi_route(hc: HttpContext, listener: str = "citizen") -> web.AbstractRouteDef:
    region = hc.node.config.region

    async def serve(request: web.Request) -> web.StreamResponse:
        return cached_response(request, _encoded(listener, region), "application/json")

    return web.get("/openapi.json", serve)
