"""The auth middleware: every non-public route acts for the organisation of its credential."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import hdrs, web

from flowboard.api.audit import audit_refusal
from flowboard.api.endpoint import Endpoint, Handler
from flowboard.api.errors import error_response
from flowboard.api.metrics import metrics as metrics_handler
from flowboard.api.principal import ORG_KEY, PRINCIPAL_KEY
from flowboard.auth.identity import IdentityUnavailable, Principal, Unauthenticated
from flowboard.canvas.model import DEFAULT_ORG
from flowboard.config import AuthSettings
from flowboard.keys import AUTH, SETTINGS
from flowboard.log_throttle import LogThrottle

_LOGGER = logging.getLogger(__name__)

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flowboard"'}


@dataclass(frozen=True)
class AccessRules:
    """Which route handlers need no credential, and which accept a stream ticket."""

    public: frozenset[Handler]
    ticketed: frozenset[Handler]

    @classmethod
    def from_endpoints(cls, endpoints: Iterable[Endpoint], settings: AuthSettings) -> AccessRules:
        items = list(endpoints)
        public = {
            ep.handler
            for ep in items
            if ep.public and (settings.metrics_public or ep.handler is not metrics_handler)
        }
        return cls(frozenset(public), frozenset(ep.handler for ep in items if ep.accepts_ticket))


ACCESS: web.AppKey[AccessRules] = web.AppKey("access")
# Refused credentials need no token to send: their lines are throttled (log_throttle.py).
REFUSALS: web.AppKey[LogThrottle] = web.AppKey("refusals")


def refusal_throttle() -> LogThrottle:
    return LogThrottle(_LOGGER, "requests refused for their credential")


def _bearer(header: str) -> str:
    scheme, _, credential = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthenticated("malformed Authorization header (expected 'Bearer <token>')")
    return credential.strip()


async def identify(request: web.Request, ticketed: bool) -> Principal:
    """Whom the request's bearer credential (or stream ticket, where allowed) speaks for."""
    authenticator = request.app[AUTH]
    header = request.headers.get(hdrs.AUTHORIZATION)
    ticket = request.query.get("ticket") if ticketed else None
    if header is None and ticket is not None:
        return await authenticator.tickets.redeem(ticket, request.match_info.get("flowId", ""))
    if header is None:
        raise Unauthenticated("missing bearer token")
    return await authenticator.bearer(_bearer(header))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a non-public route without a valid credential; else scope it to its org."""
    rules = request.app[ACCESS]
    target = request.match_info.handler
    if request.match_info.http_exception is not None or target in rules.public:
        return await handler(request)
    if not request.app[SETTINGS].auth.enabled:
        request[ORG_KEY] = DEFAULT_ORG
        return await handler(request)
    try:
        principal = await identify(request, target in rules.ticketed)
    except Unauthenticated as exc:
        if request.app[REFUSALS].allow():  # the audit record too: anyone can send these
            extra = {"path": request.path, "remote": request.remote}
            _LOGGER.info("request refused: %s", exc, extra=extra)
            await audit_refusal(request, str(exc))
        return error_response(401, "unauthorized", str(exc), headers=CHALLENGE)
    except IdentityUnavailable as exc:
        _LOGGER.warning("identity provider unavailable: %s", exc.__cause__ or exc)
        return error_response(503, "identity_unavailable", str(exc))
    request[ORG_KEY] = principal.org_id
    request[PRINCIPAL_KEY] = principal
    return await handler(request)
