"""Who is calling: the organisation every query is scoped to."""

from __future__ import annotations

from aiohttp import web

from flowboard.auth.identity import Principal
from flowboard.canvas.model import DEFAULT_ORG
from flowboard.keys import SETTINGS

ORG_KEY: web.RequestKey[str] = web.RequestKey("org_id", str)
# The whole credential, for what is kept per caller (rate limits); absent while auth is off.
PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


class NoPrincipal(RuntimeError):
    """A handler asked for the organisation of a request nobody authenticated."""


def org_id(request: web.Request) -> str:
    """The caller's organisation, set by the auth middleware; never guessed while auth is on."""
    value: str | None = request.get(ORG_KEY)
    if value is not None:
        return value
    if request.app[SETTINGS].auth.enabled:
        raise NoPrincipal(f"{request.method} {request.path}: no authenticated organisation")
    return DEFAULT_ORG
