"""A budget as shown by the API, and the reservation a running task holds."""

from __future__ import annotations

from datetime import datetime

from flowboard.schema import ApiModel

# A period without a limit: "left" so large no reservation reaches it.
UNLIMITED = 1e15


def day_key(now: datetime) -> str:
    return f"{now:%Y-%m-%d}"


def month_key(now: datetime) -> str:
    return f"{now:%Y-%m}"


class Period(ApiModel):
    """One period's figures: `limit` None means no limit."""

    key: str
    limit: float | None
    spent: float
    remaining: float | None


class BudgetView(ApiModel):
    """An organisation's limits and what the current day and month have spent (UTC)."""

    org_id: str
    unit: str
    day: Period
    month: Period


class Reservation(ApiModel):
    """Spend a task reserved when it started; settled (once) when it ends."""

    amount: float
    day: str
    month: str
    settled: bool = False
