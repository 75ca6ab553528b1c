"""A change to one task, applied in the only place task state moves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flowboard.costs.ledger import settle, totals
from flowboard.ids import utcnow
from flowboard.models.costs import Units
from flowboard.models.execution import Execution, Task, TaskError, TaskStatus, check_transition


@dataclass(frozen=True)
class TaskChange:
    """What to change on a task; None leaves a field as it is."""

    status: TaskStatus | None = None
    progress: float | None = None
    estimated: bool | None = None
    description: str | None = None
    output_asset_id: str | None = None
    output_url: str | None = None
    error: TaskError | None = None
    add_attempt: bool = False
    cached: bool | None = None
    content_key: str | None = None
    actual_units: Units | None = None  # what the ended task delivered (flowboard/costs/)
    actual_cost: float | None = None
    warnings: tuple[str, ...] | None = None
    queue_position: int | None = None  # with status QUEUED
    eta_seconds: float | None = None


def _progress(task: Task, change: TaskChange, status: TaskStatus) -> float:
    if status is TaskStatus.COMPLETED:
        return 100.0
    if change.progress is None:
        return task.progress
    # Progress never goes backwards and reaches 100 only on completion.
    return max(task.progress, min(99.0, change.progress))


def apply_change(execution: Execution, node_id: str, change: TaskChange) -> Execution:
    """Return the execution with the change applied; IllegalTransition if not allowed."""
    task = execution.tasks[node_id]
    status = change.status or task.status
    check_transition(task.status, status)
    now = utcnow()
    updates = {
        "status": status,
        "progress": _progress(task, change, status),
        "progress_estimated": task.progress_estimated
        if change.estimated is None
        else change.estimated,
        "status_description": change.description
        if change.description is not None
        else task.status_description,
        "output_asset_id": change.output_asset_id or task.output_asset_id,
        "output_url": change.output_url or task.output_url,
        "error": change.error or task.error,
        "attempts": task.attempts + (1 if change.add_attempt else 0),
        "cached": task.cached if change.cached is None else change.cached,
        "content_key": change.content_key or task.content_key,
        "queue_position": change.queue_position if status is TaskStatus.QUEUED else None,
        "eta_seconds": change.eta_seconds if status is TaskStatus.QUEUED else None,
        "warnings": task.warnings if change.warnings is None else list(change.warnings),
        "cost": settle(task.cost, change.actual_units, change.actual_cost, status.terminal),
        "updated_at": now,
        "started_at": task.started_at or (now if status is TaskStatus.PROCESSING else None),
        "finished_at": now if status.terminal else None,
    }
    tasks = {**execution.tasks, node_id: task.model_copy(update=updates)}
    cost = execution.cost and totals((t.cost for t in tasks.values()), execution.cost.unit)
    changed = execution.model_copy(update={"tasks": tasks, "updated_at": now, "cost": cost})
    status_now = changed.derived_status()
    finished = now if status_now.terminal else None
    return changed.model_copy(
        update={"status": status_now, "finished_at": finished, "version": execution.version + 1}
    )


class TaskUpdater(Protocol):
    """The owner of job state (the engine): every writer of a task goes through it."""

    async def update_task(
        self, execution_id: str, node_id: str, change: TaskChange, *, store: bool = True
    ) -> Execution | None: ...

    async def task(self, execution_id: str, node_id: str) -> Task | None: ...

    async def task_status(self, execution_id: str, node_id: str) -> TaskStatus | None: ...
