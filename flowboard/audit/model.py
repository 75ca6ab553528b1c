"""An audit record and the actions recorded."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from flowboard.schema import ApiModel


class AuditAction(StrEnum):
    """What an audit record says happened."""

    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    AUTH_REFUSED = "auth.refused"
    BUDGET_CHANGED = "budget.changed"
    WEBHOOK_CREATED = "webhook.created"
    WEBHOOK_DELETED = "webhook.deleted"
    RESTORED = "backup.restored"


class AuditRecord(ApiModel):
    """One audited action.

    org_id: the organisation it concerns (None: not known, as for an unknown token).
    actor: who: `token:<id>`, `jwt:<sub>`, `cli:<user>@<host>`, `anonymous`.
    source: from where: the client address, or `cli:<host>` for a command.
    target: the id acted on (token, webhook subscription, backup folder), if any.
    details: what else is worth keeping (new limits, a refusal's reason and path).
    """

    id: str
    org_id: str | None = None
    at: datetime
    action: AuditAction
    actor: str
    source: str
    target: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class AuditPage(ApiModel):
    """A page of audit records, newest first."""

    items: list[AuditRecord]
    total: int
    offset: int
    limit: int
