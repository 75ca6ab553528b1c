"""Cost figures recorded on tasks and executions (no Flowboard imports but the schema)."""

from __future__ import annotations

from pydantic import Field

from flowboard.schema import ApiModel


class Units(ApiModel):
    """What a generation is billed by: seconds of video, images, runs."""

    seconds: float = Field(default=0.0, ge=0)
    images: int = Field(default=0, ge=0)
    runs: int = Field(default=0, ge=0)


class TaskCost(ApiModel):
    """A task's estimate (made when the run was planned) and, once ended, what it cost.

    estimated: the cost of `estimated_units` (0 for a task planned to reuse a result).
    actual: set when the task ends: 0 when it reused a result or was not billed
        (failed, cancelled, filtered to nothing), else the cost of `actual_units`.
    """

    estimated_units: Units = Field(default_factory=Units)
    estimated: float = 0.0
    actual_units: Units | None = None
    actual: float | None = None


class ExecutionCost(ApiModel):
    """The totals of an execution's tasks; `actual` counts the tasks ended so far."""

    unit: str = "USD"
    estimated: float = 0.0
    actual: float = 0.0
