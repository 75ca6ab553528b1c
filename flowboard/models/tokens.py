"""The stored API token: the store reads and writes it, `auth/tokens.py` issues it."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from flowboard.ids import Id
from flowboard.schema import ApiModel


class ApiToken(ApiModel):
    """A stored token: who it speaks for, never its plain text."""

    id: Id
    org_id: Id
    name: str = Field(min_length=1, max_length=200)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None
