"""Start the tasks of a run as their upstream completes; end those whose upstream failed.

Each task's end (`ExecutionState.on_task_ended`) schedules its execution again: ready
tasks start within `max_concurrent_nodes`, blocked ones end FAILED or CANCELLED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flowboard.canvas.service import CanvasService, FlowNotFound
from flowboard.config import ExecutionSettings
from flowboard.errors import InvalidRequest
from flowboard.events.bus import EventBus
from flowboard.keyed_lock import KeyedLock
from flowboard.metrics import Metrics
from flowboard.models.execution import Execution, Task, TaskError, TaskStatus
from flowboard.runs.changes import TaskChange
from flowboard.runs.creation import job_of
from flowboard.runs.jobs import JobRunner
from flowboard.runs.port import Job, NodeProcessor
from flowboard.runs.publisher import ExecutionPublisher
from flowboard.runs.readiness import blocked_by, downstream_end, startable
from flowboard.runs.state import ExecutionState
from flowboard.store.executions import ExecutionStore
from flowboard.streams.hub import StreamHub

if TYPE_CHECKING:
    from flowboard.mirror.firestore import FirestoreMirror


@dataclass
class RunScheduler:
    """Owns the execution state (through `state`) and starts each task when it is ready."""

    store: ExecutionStore
    canvas: CanvasService
    hub: StreamHub
    bus: EventBus
    settings: ExecutionSettings
    runner: JobRunner = field(default_factory=JobRunner)
    mirror: FirestoreMirror | None = None
    metrics: Metrics = field(default_factory=Metrics)
    processors: dict[str, NodeProcessor] = field(default_factory=dict)
    _schedule_locks: KeyedLock = field(default_factory=KeyedLock)
    state: ExecutionState = field(init=False)

    def __post_init__(self) -> None:
        publisher = ExecutionPublisher(self.hub, self.bus, self.mirror)
        self.state = ExecutionState(self.store, publisher, self.metrics, self._schedule)

    async def update_task(
        self, execution_id: str, node_id: str, change: TaskChange, *, store: bool = True
    ) -> Execution | None:
        """Apply, persist and publish a task change (`ExecutionState.update_task`)."""
        return await self.state.update_task(execution_id, node_id, change, store=store)

    async def task(self, execution_id: str, node_id: str) -> Task | None:
        return await self.state.task(execution_id, node_id)

    async def task_status(self, execution_id: str, node_id: str) -> TaskStatus | None:
        return await self.state.task_status(execution_id, node_id)

    # -- scheduling ----------------------------------------------------------------

    async def _schedule(self, execution_id: str) -> None:
        """Start ready tasks (within the limit); end tasks whose upstream failed."""
        async with self._schedule_locks.hold(execution_id):
            execution = await self.state.current(execution_id)
            if execution is None or execution.status.terminal:
                return
            for node_id, task in execution.tasks.items():
                if task.status is not TaskStatus.PENDING:
                    continue
                blocked = blocked_by(execution, task)
                if blocked is not None:
                    await self._end_downstream(execution, node_id, blocked)
            for node_id in self._startable(execution):
                await self._start(execution, node_id)

    def _startable(self, execution: Execution) -> list[str]:
        return startable(execution, self.settings.max_concurrent_nodes)

    async def _end_downstream(self, execution: Execution, node_id: str, upstream: str) -> None:
        change = downstream_end(execution, upstream)
        # Scheduling again from inside update_task re-enters this lock's owner: defer it.
        self.runner.spawn(
            f"{execution.id}:{node_id}:end", self._change_quietly(execution.id, node_id, change)
        )

    async def _change_quietly(self, execution_id: str, node_id: str, change: TaskChange) -> None:
        await self.update_task(execution_id, node_id, change)

    async def _start(self, execution: Execution, node_id: str) -> None:
        job = await self._job(execution, node_id)
        if job is None:
            return
        try:
            await self.processors[job.node.type].process_job(job)
        except InvalidRequest as exc:
            await self._fail_later(execution.id, node_id, exc.code.value, exc.message)

    async def _job(self, execution: Execution, node_id: str) -> Job | None:
        """The job for a task, from the flow as it is now; None (and FAILED) if gone."""
        try:
            flow = await self.canvas.get(execution.org_id, execution.flow_id)
        except FlowNotFound:
            flow = None
        node = flow.node(node_id) if flow else None
        if flow is None or node is None:
            await self._fail_later(execution.id, node_id, "node_removed", "node was removed")
            return None
        return job_of(execution, flow, node)

    async def _fail_later(self, execution_id: str, node_id: str, code: str, message: str) -> None:
        change = TaskChange(status=TaskStatus.FAILED, error=TaskError(code=code, message=message))
        self.runner.spawn(
            f"{execution_id}:{node_id}:fail", self._change_quietly(execution_id, node_id, change)
        )
