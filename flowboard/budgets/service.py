"""Budgets: refuse runs the remaining budget cannot pay, reserve at start, settle at end.

A run is refused (402 `budget_exceeded`) when its plan's estimate is more than what the
day or the month has left. That check alone cannot stop concurrent runs, so each task
that calls a provider also reserves its estimate when it starts, in one conditional
update (`BudgetStore.reserve`): without room, the task fails `budget_exceeded` before
any provider call. When the task's take ends, the reservation is settled once: the
difference to the actual cost is released (all of it for a take that delivered
nothing: no provider bills a failed, cancelled or filtered-to-nothing generation) or
charged (a take that delivered more than estimated).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flowboard.assets.model import GeneratedAsset
from flowboard.budgets.store import BudgetStore
from flowboard.costs.ledger import round_cost
from flowboard.errors import ErrorAnswer, FlowboardError
from flowboard.ids import utcnow
from flowboard.models.budgets import UNLIMITED, BudgetView, Period, Reservation

_LOGGER = logging.getLogger(__name__)


class BudgetExceeded(FlowboardError):
    """A run's estimate is more than the budget has left: answered 402 with the figures."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    http_status, error_code = 402, "budget_exceeded"

    def answer(self) -> ErrorAnswer:
        return ErrorAnswer(self.http_status, self.error_code, self.message, self.details)


def _period(doc: dict[str, Any], name: str) -> Period:
    limit = doc[f"{name}Limit"]
    spent = round_cost(doc[f"{name}Spent"])
    remaining = None if limit is None else round_cost(max(0.0, doc[f"{name}Left"]))
    return Period(key=doc[f"{name}Key"], limit=limit, spent=spent, remaining=remaining)


@dataclass
class Budgets:
    store: BudgetStore
    unit: str

    async def view(self, org_id: str) -> BudgetView:
        doc = await self.store.current(org_id, utcnow())
        return BudgetView(
            org_id=org_id, unit=self.unit, day=_period(doc, "day"), month=_period(doc, "month")
        )

    async def set_limits(self, org_id: str, day: float | None, month: float | None) -> BudgetView:
        await self.store.set_limits(org_id, day, month, utcnow())
        return await self.view(org_id)

    async def check(self, org_id: str, estimate: float) -> None:
        """Raise BudgetExceeded when the estimate is more than the day or month has left."""
        if estimate <= 0:
            return
        doc = await self.store.current(org_id, utcnow())
        left = min(doc["dayLeft"], doc["monthLeft"])
        if estimate <= left:
            return
        view = await self.view(org_id)
        remaining = round_cost(max(0.0, left)) if left < UNLIMITED else None
        details = {
            "estimated": round_cost(estimate),
            "remaining": remaining,
            "unit": self.unit,
            "day": view.day.to_json(),
            "month": view.month.to_json(),
        }
        message = f"the run is estimated at {estimate:g} {self.unit}; {max(0.0, left):g} left"
        raise BudgetExceeded(message, details)

    async def reserve(self, org_id: str, amount: float) -> Reservation | None:
        """Reserve a starting task's estimate; None when the budget has no room for it."""
        return await self.store.reserve(org_id, round_cost(amount), utcnow())

    async def release(self, org_id: str, task_key: str, reservation: Reservation) -> None:
        """Give back a reservation whose take never began (no asset holds it)."""
        await self.store.adjust(org_id, reservation, -reservation.amount)
        _LOGGER.info(
            "budget reservation released",
            extra={"org_id": org_id, "task": task_key, "reserved": reservation.amount},
        )

    async def settle(self, asset: GeneratedAsset, actual: float) -> None:
        """Settle the take's reservation once against what it really cost."""
        reservation = asset.reservation
        if reservation is None or reservation.settled:
            return
        claimed = await self.store.database.assets.update_one(
            {"_id": asset.id, "reservation.settled": False},
            {"$set": {"reservation.settled": True}},
        )
        if not claimed.modified_count:
            return  # settled by an earlier delivery of the same end
        delta = round_cost(actual - reservation.amount)
        if delta:
            await self.store.adjust(asset.org_id, reservation, delta)
        _LOGGER.info(
            "budget settled",
            extra={
                "asset_id": asset.id,
                "org_id": asset.org_id,
                "reserved": reservation.amount,
                "actual": actual,
            },
        )
