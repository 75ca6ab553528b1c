"""Storage bytes, generations and cost per organisation and UTC month, from the records.

Storage is what the asset records name (each file once), counted in the month the asset
was made; generations are completed generated assets (uploads are not); cost is the
actual cost of the executions started that month.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from flowboard.db.database import Database
from flowboard.retention.sweep import asset_files
from flowboard.schema import ApiModel


class UsageMonth(ApiModel):
    """One organisation's use in one UTC month (`YYYY-MM`)."""

    org_id: str
    month: str
    storage_bytes: int = 0
    files: int = 0
    generations: int = 0
    cost: float = 0.0


class UsageReport(ApiModel):
    unit: str
    items: list[UsageMonth]


def _month(value: Any) -> str:
    return f"{value:%Y-%m}" if isinstance(value, datetime) else "unknown"


async def usage(database: Database, org_id: str | None = None) -> list[UsageMonth]:
    """Rows by organisation, then month (oldest first)."""
    query = {} if org_id is None else {"orgId": org_id}
    rows: dict[tuple[str, str], UsageMonth] = {}
    seen: set[str] = set()

    def row(org: str, month: str) -> UsageMonth:
        if (org, month) not in rows:
            rows[(org, month)] = UsageMonth(org_id=org, month=month)
        return rows[(org, month)]

    projection = {"orgId": 1, "createdAt": 1, "storage": 1, "poster": 1, "outputs": 1}
    projection |= {"status": 1, "workflow": 1}
    async for asset in database.assets.find(query, projection):
        entry = row(str(asset["orgId"]), _month(asset.get("createdAt")))
        for key, size in asset_files(asset).items():
            if key not in seen:
                seen.add(key)
                entry.storage_bytes += size
                entry.files += 1
        if asset.get("status") == "COMPLETED" and asset.get("workflow") != "upload":
            entry.generations += 1
    costs: dict[tuple[str, str], float] = defaultdict(float)
    async for run in database.executions.find(query, {"orgId": 1, "createdAt": 1, "cost": 1}):
        actual = (run.get("cost") or {}).get("actual") or 0.0
        costs[(str(run["orgId"]), _month(run.get("createdAt")))] += float(actual)
    for (org, month), amount in costs.items():
        row(org, month).cost = round(amount, 6)
    return sorted(rows.values(), key=lambda r: (r.org_id, r.month))
