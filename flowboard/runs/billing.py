"""A run's money: reserve a task's estimate, settle its actual cost, price a take."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flowboard.assets.model import GeneratedAsset
from flowboard.budgets.service import Budgets
from flowboard.costs.prices import PriceTable
from flowboard.costs.units import delivered_units, estimate_units
from flowboard.errors import ErrorCode, InvalidRequest
from flowboard.models.budgets import Reservation
from flowboard.nodes.kind import GenerationSpec
from flowboard.runs.port import Job


@dataclass(frozen=True)
class RunBilling:
    """Prices and budgets as a generation uses them (either may be absent: no billing)."""

    prices: PriceTable | None
    budgets: Budgets | None

    def releaser(
        self, job: Job, reservation: Reservation | None
    ) -> Callable[[], Awaitable[None]] | None:
        """What gives the reservation back if the launch never begins."""
        budgets = self.budgets
        if budgets is None or reservation is None:
            return None
        return lambda: budgets.release(job.org_id, job.key, reservation)

    async def reserve(
        self, job: Job, spec: GenerationSpec, data: Any, provider: str
    ) -> Reservation | None:
        """Reserve the task's estimate in its organisation's budget (refused: a 422 code)."""
        if self.budgets is None or self.prices is None:
            return None
        params = data.model_dump(mode="json", by_alias=True, exclude_none=True)
        model = params.get("model")
        amount = self.prices.cost(provider, model, estimate_units(spec.media, params))
        if amount <= 0:
            return None
        reservation = await self.budgets.reserve(job.org_id, amount)
        if reservation is None:
            message = f"the budget has less than this node's estimate ({amount:g}) left"
            raise InvalidRequest(message, ErrorCode.BUDGET_EXCEEDED)
        return reservation

    async def settle(self, asset: GeneratedAsset | None, actual: float) -> None:
        if self.budgets is not None and asset is not None and asset.reservation is not None:
            await self.budgets.settle(asset, actual)

    def actual_cost(self, asset: GeneratedAsset | None) -> dict[str, Any]:
        """What a finished take cost by the price table (TaskChange fields)."""
        if asset is None or self.prices is None or asset.provider is None:
            return {}
        units = delivered_units(asset)
        model = asset.parameters.get("model")
        cost = self.prices.cost(asset.provider, str(model) if model else None, units)
        return {"actual_units": units, "actual_cost": cost}
