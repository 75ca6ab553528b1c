"""Execution state: one document per run, one task per node run."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from flowboard.models.costs import ExecutionCost, TaskCost
from flowboard.schema import ApiModel


class TaskStatus(StrEnum):
    """The seed's statuses plus CANCELLED; transitions live in TRANSITIONS only."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"  # waiting for a slot of its provider (runs/queue.py)
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
ACTIVE = frozenset({TaskStatus.PENDING, TaskStatus.QUEUED, TaskStatus.PROCESSING})
# Started: a job of this process runs it (or should: the reaper re-drives it).
RUNNING = frozenset({TaskStatus.QUEUED, TaskStatus.PROCESSING})

TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    # PENDING -> COMPLETED: a task that reused an unchanged result (runs/reuse.py).
    TaskStatus.PENDING: frozenset(
        {
            TaskStatus.QUEUED,
            TaskStatus.PROCESSING,
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
        }
    ),
    TaskStatus.QUEUED: frozenset(
        {TaskStatus.QUEUED, TaskStatus.PROCESSING, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.PROCESSING: frozenset(
        {TaskStatus.PROCESSING, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


class IllegalTransition(Exception):
    """A task was asked to move to a status its current status cannot reach."""


def sources(target: TaskStatus) -> frozenset[TaskStatus]:
    """Every status that may move to `target` (a guard for conditional writes)."""
    return frozenset(status for status, targets in TRANSITIONS.items() if target in targets)


def check_transition(current: TaskStatus, target: TaskStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current.value} -> {target.value} is not allowed")


class TaskError(ApiModel):
    code: str
    message: str


class Task(ApiModel):
    """One node's run inside an execution.

    progress: 0-100; estimated when the provider reports none.
    output_asset_id: the GeneratedAsset the run produced (or is producing).
    attempts: provider submissions made for this task (retries included).
    cached: the task reused an unchanged result (no provider was asked).
    content_key: what the output depends on, hashed (runs/content_key.py).
    """

    node_id: str
    node_type: str
    status: TaskStatus = TaskStatus.PENDING
    progress: float = Field(default=0.0, ge=0, le=100)
    progress_estimated: bool = False
    status_description: str = ""
    output_asset_id: str | None = None
    output_url: str | None = None
    error: TaskError | None = None
    attempts: int = 0
    cached: bool = False
    content_key: str | None = None
    cost: TaskCost | None = None  # estimated and actual units and cost (flowboard/costs/)
    warnings: list[str] = Field(default_factory=list)  # the output's (filtered variants)
    queue_position: int | None = None  # while QUEUED: 1 = next to start (runs/queue.py)
    eta_seconds: float | None = None  # while QUEUED: when it should start, from recent runs
    depends_on: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ExecutionKind(StrEnum):
    NODE = "node"
    FLOW = "flow"
    RETRY = "retry"


class Execution(ApiModel):
    """A run of one node or a whole flow; `tasks` is keyed by node id."""

    TERMINAL: ClassVar[frozenset[TaskStatus]] = TERMINAL

    id: str
    org_id: str
    flow_id: str
    kind: ExecutionKind
    status: TaskStatus = TaskStatus.PENDING
    tasks: dict[str, Task]
    client_request_id: str | None = None
    retry_of: str | None = None
    reuse: bool = False  # tasks may reuse unchanged results (runs/reuse.py)
    cost: ExecutionCost | None = None  # the tasks' totals (flowboard/costs/)
    version: int = 0
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None

    def derived_status(self) -> TaskStatus:
        """PROCESSING while any task is active; then FAILED, CANCELLED or COMPLETED."""
        statuses = {t.status for t in self.tasks.values()}
        if statuses <= {TaskStatus.PENDING}:
            return TaskStatus.PENDING
        if statuses & ACTIVE:
            return TaskStatus.PROCESSING
        if TaskStatus.FAILED in statuses:
            return TaskStatus.FAILED
        if TaskStatus.CANCELLED in statuses:
            return TaskStatus.CANCELLED
        return TaskStatus.COMPLETED
