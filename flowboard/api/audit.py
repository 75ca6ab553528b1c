"""`GET /audit`: the caller's organisation's audit records, for its admins; and the
`audit()` helper the API's handlers record their actions with.

There are no roles yet: every credential of an organisation acts as its admin. A role
plugs in at `require_admin` (a viewer's principal answered 403 there).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from flowboard.api.bodies import json_answer, query_int
from flowboard.api.endpoint import Endpoint, Param
from flowboard.api.errors import ApiError
from flowboard.api.flows import PREFIX
from flowboard.api.principal import PRINCIPAL_KEY, org_id
from flowboard.audit.log import AuditFilter, AuditLog
from flowboard.audit.model import AuditAction, AuditPage

AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")


def require_admin(request: web.Request) -> str:
    """The caller's organisation, when the caller may read its audit log (today: any)."""
    return org_id(request)


def request_actor(request: web.Request) -> tuple[str, str]:
    """(actor, source) of an API request: its credential and the client address."""
    principal = request.get(PRINCIPAL_KEY)
    actor = f"{principal.method.value}:{principal.subject}" if principal else "anonymous"
    return actor, request.remote or "unknown"


async def audit(
    request: web.Request,
    action: AuditAction,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record an action of this request, for the caller's organisation."""
    actor, source = request_actor(request)
    await request.app[AUDIT].record(action, actor, source, org_id(request), target, details)


async def audit_refusal(request: web.Request, reason: str) -> None:
    """Record a refused credential: nobody's organisation, the client's address."""
    details = {"reason": reason, "path": request.path}
    source = request.remote or "unknown"
    await request.app[AUDIT].record(
        AuditAction.AUTH_REFUSED, "anonymous", source, None, None, details
    )


def _time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(400, "invalid_query", f"{name} must be an ISO 8601 time") from exc
    if value.tzinfo is None:
        raise ApiError(400, "invalid_query", f"{name} needs a time zone (e.g. Z)")
    return value


def _action(request: web.Request) -> AuditAction | None:
    raw = request.query.get("action")
    if raw is None:
        return None
    try:
        return AuditAction(raw)
    except ValueError as exc:
        known = ", ".join(a.value for a in AuditAction)
        raise ApiError(400, "invalid_query", f"action must be one of {known}") from exc


async def list_audit(request: web.Request) -> web.Response:
    org = require_admin(request)
    offset = query_int(request, "offset", 0, 0, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 200)
    where = AuditFilter(
        org_id=org,
        action=_action(request),
        actor=request.query.get("actor"),
        since=_time(request, "since"),
        until=_time(request, "until"),
    )
    items, total = await request.app[AUDIT].find(where, offset, limit)
    return json_answer(AuditPage(items=items, total=total, offset=offset, limit=limit))


def endpoints() -> list[Endpoint]:
    params = (
        Param("action", "query", "only this action (e.g. token.created)"),
        Param("actor", "query", "only this actor (e.g. token:tok_…)"),
        Param("since", "query", "records at or after this ISO 8601 time"),
        Param("until", "query", "records before this ISO 8601 time"),
        Param("offset", "query", schema_type="integer"),
        Param("limit", "query", schema_type="integer"),
    )
    return [
        Endpoint(
            "GET",
            f"{PREFIX}/audit",
            list_audit,
            "The organisation's audit log, newest first (admins)",
            "audit",
            None,
            AuditPage,
            params=params,
        )
    ]
