"""The price table: what a generation's units cost, by provider and model."""

from __future__ import annotations

from dataclasses import dataclass

from flowboard.config import CostSettings, PriceSettings
from flowboard.costs.ledger import round_cost
from flowboard.models.costs import Units

_FREE = PriceSettings()


@dataclass(frozen=True)
class PriceTable:
    """Looks up the row "<provider>:<model>", then "<provider>"; no row costs 0."""

    settings: CostSettings

    @property
    def unit(self) -> str:
        return self.settings.unit

    def row(self, provider: str, model: str | None) -> PriceSettings:
        prices = self.settings.prices
        if model and f"{provider}:{model}" in prices:
            return prices[f"{provider}:{model}"]
        return prices.get(provider, _FREE)

    def cost(self, provider: str, model: str | None, units: Units) -> float:
        row = self.row(provider, model)
        total = units.seconds * row.per_second + units.images * row.per_image
        return round_cost(total + units.runs * row.per_run)
