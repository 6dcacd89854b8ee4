"""Public trust material over HTTPS (filled in below)."""

from __future__ import annotations

from aiohttp import web

from node.http._context import HttpContext

__all__ = ["trust_routes"]


def trust_routes(hc: HttpContext) -> list[web.AbstractRouteDef]:
    return []
