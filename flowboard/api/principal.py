"""Who is calling: the organisation every query is scoped to."""

from __future__ import annotations

from aiohttp import web

from flowboard.canvas.model import DEFAULT_ORG

ORG_KEY = "flowboard.org_id"


def org_id(request: web.Request) -> str:
    """The caller's organisation (set by the auth middleware; the default org otherwise)."""
    value = request.get(ORG_KEY, DEFAULT_ORG)
    return str(value)
