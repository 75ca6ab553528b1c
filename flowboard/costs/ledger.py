"""How a task's recorded cost moves: settled when it ends, summed per execution."""

from __future__ import annotations

from collections.abc import Iterable

from flowboard.models.costs import ExecutionCost, TaskCost, Units


def round_cost(value: float) -> float:
    """Costs are kept to 1e-6 units, so sums of the same figures compare equal."""
    return round(value, 6)


def settle(
    cost: TaskCost | None, units: Units | None, amount: float | None, ended: bool
) -> TaskCost | None:
    """The task's cost after a change: the actual figures given, or 0 if it ended without.

    A task that ends with no actual cost recorded (failed, cancelled, filtered to
    nothing) was not billed: its actual cost is 0.
    """
    if amount is None and not ended:
        return cost
    current = cost or TaskCost()
    if current.actual is not None and amount is None:
        return current  # settled already
    return current.model_copy(
        update={"actual_units": units or Units(), "actual": round_cost(amount or 0.0)}
    )


def totals(costs: Iterable[TaskCost | None], unit: str) -> ExecutionCost:
    """The estimate and the actual cost so far of an execution's tasks."""
    known = [c for c in costs if c is not None]
    return ExecutionCost(
        unit=unit,
        estimated=round_cost(sum(c.estimated for c in known)),
        actual=round_cost(sum(c.actual or 0.0 for c in known)),
    )
