"""The OpenAPI document (filled in below)."""

from __future__ import annotations

from aiohttp import web

from node.http._context import HttpContext

__all__ = ["openapi_route"]


def openapi_route(hc: HttpContext) -> web.AbstractRouteDef:
    async def serve(request: web.Request) -> web.Response:
        return web.json_response({"openapi": "3.1.0"})

    return web.get("/openapi.json", serve)
