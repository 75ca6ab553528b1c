"""The scheduler's readiness rules: which PENDING tasks may start, which must end."""

from __future__ import annotations

from flowboard.errors import ErrorCode
from flowboard.models.execution import RUNNING, Execution, Task, TaskError, TaskStatus
from flowboard.runs.changes import TaskChange


def startable(execution: Execution, max_running: int) -> list[str]:
    """PENDING tasks whose upstream all COMPLETED, within the concurrency limit."""
    tasks = execution.tasks.values()
    room = max_running - sum(t.status in RUNNING for t in tasks)
    ready = [
        node_id
        for node_id, task in execution.tasks.items()
        if task.status is TaskStatus.PENDING and is_ready(execution, task)
    ]
    return ready[: max(0, room)]


def is_ready(execution: Execution, task: Task) -> bool:
    """Whether every upstream task of this run COMPLETED (an absent one is not waited for)."""
    deps = [execution.tasks[d] for d in task.depends_on if d in execution.tasks]
    return all(d.status is TaskStatus.COMPLETED for d in deps)


def blocked_by(execution: Execution, task: Task) -> str | None:
    """The first upstream node that ended FAILED or CANCELLED, if any."""
    for dep in task.depends_on:
        status = execution.tasks[dep].status if dep in execution.tasks else None
        if status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return dep
    return None


def downstream_end(execution: Execution, upstream: str) -> TaskChange:
    """How a task ends whose upstream ended: CANCELLED after a cancel, else FAILED."""
    upstream_status = execution.tasks[upstream].status
    status = TaskStatus.CANCELLED if upstream_status is TaskStatus.CANCELLED else TaskStatus.FAILED
    error = TaskError(
        code=ErrorCode.UPSTREAM_FAILED.value,
        message=f"upstream node {upstream!r} ended {upstream_status.value}",
    )
    return TaskChange(status=status, error=error)
