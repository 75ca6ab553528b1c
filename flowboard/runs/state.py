"""The one owner of execution state: every task change is applied, stored, then shown here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from flowboard.errors import ErrorAnswer, FlowboardError, StaleWrite
from flowboard.keyed_lock import KeyedLock
from flowboard.metrics import Metrics
from flowboard.models.execution import Execution, IllegalTransition, Task, TaskStatus
from flowboard.runs.changes import TaskChange, apply_change
from flowboard.runs.publisher import ExecutionPublisher
from flowboard.store.executions import ExecutionStore

_LOGGER = logging.getLogger(__name__)


class ExecutionNotFound(FlowboardError, LookupError):
    """No execution with that id in the caller's organisation."""

    http_status, error_code = 404, "execution_not_found"

    def answer(self) -> ErrorAnswer:
        message = f"execution {self.args[0]!r} not found"
        return ErrorAnswer(self.http_status, self.error_code, message)


@dataclass
class ExecutionState:
    """Persists and publishes task changes; keeps the live copy of each active execution.

    store: where executions are written (a version check on every replace).
    publisher: shows each change (stream, bus, mirror).
    metrics: counts each task transition.
    on_task_ended: called once a task reached a terminal status (the scheduler's turn).
    """

    store: ExecutionStore
    publisher: ExecutionPublisher
    metrics: Metrics
    on_task_ended: Callable[[str], Awaitable[None]]
    _state_locks: KeyedLock = field(default_factory=KeyedLock)
    # The latest state of each execution still active, kept by the one writer of it:
    # task changes then cost one write, not a read and a write.
    live: dict[str, Execution] = field(default_factory=dict)

    async def get(self, org_id: str, execution_id: str) -> Execution:
        live = self.live.get(execution_id)  # holds what is shown but not stored
        if live is not None and live.org_id == org_id:
            return live
        found = await self.store.get(org_id, execution_id)
        if found is None:
            raise ExecutionNotFound(execution_id)
        return found

    async def update_task(
        self, execution_id: str, node_id: str, change: TaskChange, *, store: bool = True
    ) -> Execution | None:
        """Apply a change, persist it, publish it; None when the transition is refused.

        `store` False: a passing guess (a provider's estimated progress), shown on the
        flow's stream and by `get` but not written: the next stored change carries it.
        """
        async with self._state_locks.hold(execution_id):
            current = await self.current(execution_id)
            if current is None or node_id not in current.tasks:
                return None
            try:
                changed = apply_change(current, node_id, change)
            except IllegalTransition as exc:
                _LOGGER.debug(
                    "task change refused: %s",
                    exc,
                    extra={"execution_id": execution_id, "node_id": node_id},
                )
                return None
            if not store:
                changed = changed.model_copy(update={"version": current.version})
            elif not await self.store.replace_if_version(changed, current.version):
                # Written by someone else (another process on this database): never by us,
                # as we hold the lock. Forget our copy; the caller's change is dropped.
                self.live.pop(execution_id, None)
                raise StaleWrite("execution", execution_id, current.version)
            self.remember(changed)
        self.publisher.publish(changed, announce=store)
        before, after = current.tasks[node_id].status, changed.tasks[node_id].status
        self.metrics.transition(changed.tasks[node_id].node_type, before, after)
        if after.terminal and not before.terminal:
            _LOGGER.info(
                "task %s",
                after.value.lower(),
                extra={
                    "execution_id": execution_id,
                    "node_id": node_id,
                    "error": changed.tasks[node_id].error,
                },
            )
            await self.on_task_ended(execution_id)
        return changed

    async def current(self, execution_id: str) -> Execution | None:
        """The latest state: our copy while the execution is active, else the stored one."""
        live = self.live.get(execution_id)
        return live if live is not None else await self.store.get_any(execution_id)

    def remember(self, execution: Execution) -> None:
        if execution.status.terminal:
            self.live.pop(execution.id, None)
        else:
            self.live[execution.id] = execution

    async def task(self, execution_id: str, node_id: str) -> Task | None:
        """A task as it is now (from memory while its execution is active)."""
        execution = await self.current(execution_id)
        return execution.tasks.get(node_id) if execution else None

    async def task_status(self, execution_id: str, node_id: str) -> TaskStatus | None:
        task = await self.task(execution_id, node_id)
        return task.status if task else None
