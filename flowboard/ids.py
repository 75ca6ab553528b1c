"""Identifiers and timestamps shared by every document."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from pydantic import StringConstraints

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


def new_id(prefix: str) -> str:
    """Return an unguessable id such as `flow_3f9c…`."""
    return f"{prefix}_{secrets.token_hex(10)}"


def utcnow() -> datetime:
    """Return the current time, timezone-aware, at millisecond precision (as BSON keeps it)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
