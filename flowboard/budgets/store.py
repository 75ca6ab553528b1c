"""The `budgets` collection: one document per organisation, spend kept as it happens.

Each document holds the limits and, for the current UTC day and month, what was spent
and what is left (`dayLeft`, `monthLeft`; a period without a limit has UNLIMITED left).
Keeping "left" lets a reservation be one conditional update — matched only while both
periods are current and both have room — so concurrent reservations can never
together go past a limit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from flowboard.db.database import Database
from flowboard.models.budgets import UNLIMITED, Reservation, day_key, month_key

_SET_ATTEMPTS = 20


def _left(limit: float | None, spent: float) -> float:
    return UNLIMITED if limit is None else limit - spent


class BudgetConflict(RuntimeError):
    """The limits could not be set: spend kept changing underneath."""


@dataclass
class BudgetStore:
    database: Database

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        return self.database.db["budgets"]

    async def current(self, org_id: str, now: datetime) -> dict[str, Any]:
        """The organisation's document, created if missing, rolled to the current periods."""
        doc = await self.collection.find_one({"_id": org_id})
        if doc is None:
            doc = {
                "_id": org_id,
                "dayLimit": None,
                "monthLimit": None,
                "dayKey": day_key(now),
                "daySpent": 0.0,
                "dayLeft": UNLIMITED,
                "monthKey": month_key(now),
                "monthSpent": 0.0,
                "monthLeft": UNLIMITED,
            }
            # Made meanwhile by a concurrent call: read below either way.
            with contextlib.suppress(DuplicateKeyError):
                await self.collection.insert_one(doc)
        return await self._rolled(org_id, now)

    async def _rolled(self, org_id: str, now: datetime) -> dict[str, Any]:
        for period, key in (("day", day_key(now)), ("month", month_key(now))):
            doc = await self.collection.find_one({"_id": org_id})
            assert doc is not None
            if doc[f"{period}Key"] != key:  # a new period starts with nothing spent
                await self.collection.update_one(
                    {"_id": org_id, f"{period}Key": doc[f"{period}Key"]},
                    {
                        "$set": {
                            f"{period}Key": key,
                            f"{period}Spent": 0.0,
                            f"{period}Left": _left(doc[f"{period}Limit"], 0.0),
                        }
                    },
                )
        doc = await self.collection.find_one({"_id": org_id})
        assert doc is not None
        return doc

    async def reserve(self, org_id: str, amount: float, now: datetime) -> Reservation | None:
        """Reserve `amount` in one conditional update; None when a limit has no room."""
        doc = await self.current(org_id, now)
        day, month = doc["dayKey"], doc["monthKey"]
        result = await self.collection.update_one(
            {
                "_id": org_id,
                "dayKey": day,
                "monthKey": month,
                "dayLeft": {"$gte": amount},
                "monthLeft": {"$gte": amount},
            },
            {"$inc": _spend(amount)},
        )
        if result.matched_count == 0:
            return None
        return Reservation(amount=amount, day=day, month=month)

    async def adjust(self, org_id: str, reservation: Reservation, delta: float) -> None:
        """Add `delta` (negative: release) to the periods the reservation was made in."""
        for period, key in (("day", reservation.day), ("month", reservation.month)):
            await self.collection.update_one(
                {"_id": org_id, f"{period}Key": key},
                {"$inc": {f"{period}Spent": delta, f"{period}Left": -delta}},
            )

    async def set_limits(
        self, org_id: str, day: float | None, month: float | None, now: datetime
    ) -> dict[str, Any]:
        """Set both limits; what is left follows from what the periods spent already."""
        for _ in range(_SET_ATTEMPTS):
            doc = await self.current(org_id, now)
            fields = {"daySpent", "monthSpent", "dayKey", "monthKey"}
            result = await self.collection.update_one(
                {"_id": org_id, **{name: doc[name] for name in fields}},
                {
                    "$set": {
                        "dayLimit": day,
                        "monthLimit": month,
                        "dayLeft": _left(day, doc["daySpent"]),
                        "monthLeft": _left(month, doc["monthSpent"]),
                    }
                },
            )
            if result.matched_count:
                return await self.current(org_id, now)
        raise BudgetConflict(f"budget of {org_id!r} kept changing; try again")


def _spend(amount: float) -> dict[str, float]:
    return {"daySpent": amount, "dayLeft": -amount, "monthSpent": amount, "monthLeft": -amount}
