"""Run nodes and flows: create the execution, start ready tasks, move task state.

Every task change goes through `update_task`, which persists first and then
publishes (SSE EXECUTION_UPDATE, the bus, the Firestore mirror), and starts the
tasks that the change made ready.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowboard.budgets.service import Budgets
from flowboard.canvas.model import Flow, Node
from flowboard.canvas.service import CanvasService, FlowNotFound
from flowboard.config import ExecutionSettings
from flowboard.errors import ErrorCode, InvalidRequest, StaleWrite
from flowboard.events.bus import EventBus, on
from flowboard.events.types import AssetUpdated, ExecutionUpdated, HandlerFailed
from flowboard.ids import new_id, utcnow
from flowboard.keyed_lock import KeyedLock
from flowboard.metrics import Metrics
from flowboard.models.execution import (
    RUNNING,
    Execution,
    ExecutionKind,
    IllegalTransition,
    Task,
    TaskError,
    TaskStatus,
)
from flowboard.runs.changes import TaskChange, apply_change
from flowboard.runs.dependencies import flow_plan, is_runnable
from flowboard.runs.jobs import JobRunner
from flowboard.runs.planner import RunPlan, RunPlanner, with_estimates
from flowboard.runs.port import Job, Launch, NodeProcessor
from flowboard.runs.targets import restrict
from flowboard.store.executions import ExecutionStore
from flowboard.streams.hub import StreamEventType, StreamHub

if TYPE_CHECKING:
    from flowboard.mirror.firestore import FirestoreMirror

_LOGGER = logging.getLogger(__name__)
IDEMPOTENCY_WINDOW = timedelta(hours=24)
HANDLER_FAILED = "handler_failed"


class ExecutionNotFound(LookupError):
    """No execution with that id in the caller's organisation."""


class NotRunnable(InvalidRequest):
    """The node cannot be run (missing, or of an input-only type)."""


@dataclass
class ExecutionEngine:
    """Owns execution state and the scheduling of node runs."""

    store: ExecutionStore
    canvas: CanvasService
    hub: StreamHub
    bus: EventBus
    settings: ExecutionSettings
    runner: JobRunner = field(default_factory=JobRunner)
    mirror: FirestoreMirror | None = None
    metrics: Metrics = field(default_factory=Metrics)
    processors: dict[str, NodeProcessor] = field(default_factory=dict)
    planner: RunPlanner | None = None  # estimates and dry runs (flowboard/costs/)
    budgets: Budgets | None = None  # spend limits per organisation (flowboard/budgets/)
    _state_locks: KeyedLock = field(default_factory=KeyedLock)
    _schedule_locks: KeyedLock = field(default_factory=KeyedLock)
    # The latest state of each execution still active, kept by the one writer of it:
    # task changes then cost one write, not a read and a write.
    _live: dict[str, Execution] = field(default_factory=dict)

    # -- starting runs -------------------------------------------------------------

    async def run_node(
        self,
        org_id: str,
        flow_id: str,
        node_id: str,
        client_request_id: str | None,
        reuse: bool = False,
    ) -> Execution:
        flow = await self.canvas.get(org_id, flow_id)
        node = flow.node(node_id)
        if node is None or not is_runnable(node.type):
            kind = "not found" if node is None else f"of type {node.type!r} is not runnable"
            raise NotRunnable(f"node {node_id!r} {kind}")
        await self._check(flow, [node_id])
        return await self._create(
            org_id, flow, ExecutionKind.NODE, {node_id: []}, client_request_id, reuse=reuse
        )

    async def run_flow(
        self,
        org_id: str,
        flow_id: str,
        client_request_id: str | None,
        force: bool = False,
        targets: list[str] | None = None,
    ) -> Execution:
        """Run the flow (or only `targets` and what they need); reuse unless `force`."""
        flow, plan = await self._flow_plan(org_id, flow_id, targets)
        return await self._create(
            org_id, flow, ExecutionKind.FLOW, plan, client_request_id, reuse=not force
        )

    async def plan_flow(
        self, org_id: str, flow_id: str, force: bool = False, targets: list[str] | None = None
    ) -> RunPlan:
        """What run_flow would do and cost (a dry run: nothing is written or started)."""
        flow, plan = await self._flow_plan(org_id, flow_id, targets)
        assert self.planner is not None  # the app always sets one
        return await self.planner.plan(org_id, flow, plan, reuse=not force)

    async def _flow_plan(
        self, org_id: str, flow_id: str, targets: list[str] | None
    ) -> tuple[Flow, dict[str, list[str]]]:
        flow = await self.canvas.get(org_id, flow_id)
        plan = flow_plan(flow)
        if not plan:
            raise NotRunnable(f"flow {flow_id!r} has no runnable node")
        if targets:
            plan = restrict(plan, targets)
        await self._check(flow, list(plan))
        return flow, plan

    async def _check(self, flow: Flow, node_ids: list[str]) -> None:
        """Let each node's processor refuse what cannot run (a 422 before anything starts)."""
        for node_id in node_ids:
            node = flow.node(node_id)
            if node is not None:
                await self.processors[node.type].check(flow, node)

    async def _create(
        self,
        org_id: str,
        flow: Flow,
        kind: ExecutionKind,
        plan: dict[str, list[str]],
        client_request_id: str | None,
        retry_of: str | None = None,
        reuse: bool = False,
    ) -> Execution:
        since = utcnow() - IDEMPOTENCY_WINDOW
        if client_request_id:
            existing = await self.store.by_client_request(org_id, client_request_id, since)
            if existing is not None:
                return existing
        execution = self._new_execution(org_id, flow, kind, plan, client_request_id)
        execution = execution.model_copy(update={"retry_of": retry_of, "reuse": reuse})
        if self.planner is not None:  # each task's estimate (flowboard/costs/)
            estimate = await self.planner.plan(org_id, flow, plan, reuse)
            if self.budgets is not None:  # 402 before anything starts (budgets/)
                await self.budgets.check(org_id, estimate.estimated_cost)
            execution = with_estimates(execution, estimate)
        execution, launches = await self._prepare_first(execution, flow)
        try:
            inserted = await self.store.insert(execution)
        except BaseException:
            await _abandon(launches)
            raise
        if inserted is None:  # a concurrent request with the same key inserted first
            await _abandon(launches)
            assert client_request_id is not None
            return await self._inserted_by_another(execution, client_request_id, since)
        self._live[execution.id] = execution
        _LOGGER.info(
            "execution created",
            extra={"execution_id": execution.id, "flow_id": flow.id, "tasks": len(plan)},
        )
        self._publish(execution)
        for task in execution.tasks.values():
            self.metrics.transition(task.node_type, TaskStatus.PENDING, task.status)
        for launch in launches:
            launch.begin()
        if any(t.status.terminal for t in execution.tasks.values()):
            await self._schedule(execution.id)
        return execution

    async def _prepare_first(
        self, execution: Execution, flow: Flow
    ) -> tuple[Execution, list[Launch]]:
        """Start the first tasks, so they are written PROCESSING in the execution's insert."""
        launches: list[Launch] = []
        try:
            for node_id in self._startable(execution):
                execution, launch = await self._prepare(execution, flow, node_id)
                if launch is not None:
                    launches.append(launch)
        except BaseException:
            await _abandon(launches)
            raise
        return execution, launches

    async def _inserted_by_another(
        self, lost: Execution, client_request_id: str, since: datetime
    ) -> Execution:
        _LOGGER.info(
            "idempotent request answered by a concurrent insert",
            extra={"execution_id": lost.id, "client_request_id": client_request_id},
        )
        found = await self.store.by_client_request(lost.org_id, client_request_id, since)
        if found is None:
            raise ExecutionNotFound(client_request_id)
        return found

    async def _prepare(
        self, execution: Execution, flow: Flow, node_id: str
    ) -> tuple[Execution, Launch | None]:
        """The execution with this task started (or FAILED if it cannot start)."""
        node = flow.node(node_id)
        assert node is not None  # plans are made from this flow
        job = _job(execution, flow, node)
        try:
            launch = await self.processors[node.type].prepare(job)
        except InvalidRequest as exc:
            error = TaskError(code=exc.code.value, message=exc.message)
            change = TaskChange(status=TaskStatus.FAILED, error=error)
            return apply_change(execution, node_id, change), None
        return apply_change(execution, node_id, launch.change), launch

    def _new_execution(
        self,
        org_id: str,
        flow: Flow,
        kind: ExecutionKind,
        plan: dict[str, list[str]],
        client_request_id: str | None,
    ) -> Execution:
        now = utcnow()
        types = {n.id: n.type for n in flow.nodes}
        tasks = {
            node_id: Task(
                node_id=node_id,
                node_type=types[node_id],
                depends_on=deps,
                created_at=now,
                updated_at=now,
            )
            for node_id, deps in plan.items()
        }
        return Execution(
            id=new_id("exec"),
            org_id=org_id,
            flow_id=flow.id,
            kind=kind,
            tasks=tasks,
            client_request_id=client_request_id,
            created_at=now,
            updated_at=now,
        )

    # -- reading -------------------------------------------------------------------

    async def get(self, org_id: str, execution_id: str) -> Execution:
        live = self._live.get(execution_id)  # holds what is shown but not stored
        if live is not None and live.org_id == org_id:
            return live
        found = await self.store.get(org_id, execution_id)
        if found is None:
            raise ExecutionNotFound(execution_id)
        return found

    async def list_for_flow(
        self, org_id: str, flow_id: str, offset: int, limit: int
    ) -> tuple[list[Execution], int]:
        await self.canvas.get(org_id, flow_id)
        return await self.store.list_for_flow(org_id, flow_id, offset, limit)

    # -- the one place task state changes -------------------------------------------

    async def update_task(
        self, execution_id: str, node_id: str, change: TaskChange, *, store: bool = True
    ) -> Execution | None:
        """Apply a change, persist it, publish it; None when the transition is refused.

        `store` False: a passing guess (a provider's estimated progress), shown on the
        flow's stream and by `get` but not written: the next stored change carries it.
        """
        async with self._state_locks.hold(execution_id):
            current = await self._current(execution_id)
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
                self._live.pop(execution_id, None)
                raise StaleWrite("execution", execution_id, current.version)
            self._remember(changed)
        self._publish(changed, announce=store)
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
            await self._schedule(execution_id)
        return changed

    async def _current(self, execution_id: str) -> Execution | None:
        """The latest state: our copy while the execution is active, else the stored one."""
        live = self._live.get(execution_id)
        return live if live is not None else await self.store.get_any(execution_id)

    def _remember(self, execution: Execution) -> None:
        if execution.status.terminal:
            self._live.pop(execution.id, None)
        else:
            self._live[execution.id] = execution

    async def task(self, execution_id: str, node_id: str) -> Task | None:
        """A task as it is now (from memory while its execution is active)."""
        execution = await self._current(execution_id)
        return execution.tasks.get(node_id) if execution else None

    async def task_status(self, execution_id: str, node_id: str) -> TaskStatus | None:
        task = await self.task(execution_id, node_id)
        return task.status if task else None

    def _publish(self, execution: Execution, announce: bool = True) -> None:
        """Show the execution on its flow's stream (and mirror); `announce`: on the bus too.

        Its JSON is built only for a watched flow, the mirror or the bus: thousands of
        unwatched jobs' estimated progress then costs next to nothing.
        """
        payload: dict[str, Any] | None = None

        def built() -> dict[str, Any]:
            nonlocal payload
            if payload is None:
                payload = execution.to_json()
            return payload

        self.hub.publish(execution.flow_id, StreamEventType.EXECUTION_UPDATE, built)
        if announce:
            self.bus.publish(
                ExecutionUpdated(
                    execution.id,
                    execution.flow_id,
                    execution.org_id,
                    execution.status.value,
                    built(),
                )
            )
        if self.mirror is not None:
            self.mirror.submit(execution.id, built())

    # -- scheduling ----------------------------------------------------------------

    async def _schedule(self, execution_id: str) -> None:
        """Start ready tasks (within the limit); end tasks whose upstream failed."""
        async with self._schedule_locks.hold(execution_id):
            execution = await self._current(execution_id)
            if execution is None or execution.status.terminal:
                return
            for node_id, task in execution.tasks.items():
                if task.status is not TaskStatus.PENDING:
                    continue
                blocked = self._blocked_by(execution, task)
                if blocked is not None:
                    await self._end_downstream(execution, node_id, blocked)
            for node_id in self._startable(execution):
                await self._start(execution, node_id)

    def _startable(self, execution: Execution) -> list[str]:
        """PENDING tasks whose upstream all COMPLETED, within the concurrency limit."""
        tasks = execution.tasks.values()
        room = self.settings.max_concurrent_nodes - sum(t.status in RUNNING for t in tasks)
        ready = [
            node_id
            for node_id, task in execution.tasks.items()
            if task.status is TaskStatus.PENDING and self._ready(execution, task)
        ]
        return ready[: max(0, room)]

    @staticmethod
    def _ready(execution: Execution, task: Task) -> bool:
        deps = [execution.tasks[d] for d in task.depends_on if d in execution.tasks]
        return all(d.status is TaskStatus.COMPLETED for d in deps)

    @staticmethod
    def _blocked_by(execution: Execution, task: Task) -> str | None:
        for dep in task.depends_on:
            status = execution.tasks[dep].status if dep in execution.tasks else None
            if status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                return dep
        return None

    async def _end_downstream(self, execution: Execution, node_id: str, upstream: str) -> None:
        upstream_status = execution.tasks[upstream].status
        status = (
            TaskStatus.CANCELLED if upstream_status is TaskStatus.CANCELLED else TaskStatus.FAILED
        )
        error = TaskError(
            code=ErrorCode.UPSTREAM_FAILED.value,
            message=f"upstream node {upstream!r} ended {upstream_status.value}",
        )
        # Scheduling again from inside update_task re-enters this lock's owner: defer it.
        self.runner.spawn(
            f"{execution.id}:{node_id}:end",
            self._change_quietly(execution.id, node_id, TaskChange(status=status, error=error)),
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
        return _job(execution, flow, node)

    async def _fail_later(self, execution_id: str, node_id: str, code: str, message: str) -> None:
        change = TaskChange(status=TaskStatus.FAILED, error=TaskError(code=code, message=message))
        self.runner.spawn(
            f"{execution_id}:{node_id}:fail", self._change_quietly(execution_id, node_id, change)
        )

    # -- cancel, resume, failures of handlers ---------------------------------------

    async def cancel(self, org_id: str, execution_id: str, node_id: str | None = None) -> Execution:
        """Cancel pending and running tasks (all, or one node's)."""
        execution = await self.get(org_id, execution_id)
        targets = [node_id] if node_id else list(execution.tasks)
        for target in targets:
            task = execution.tasks.get(target)
            if task is None or task.status.terminal:
                continue
            change = TaskChange(
                status=TaskStatus.CANCELLED,
                error=TaskError(code=ErrorCode.CANCELLED.value, message="cancelled by request"),
            )
            await self.update_task(execution_id, target, change)
            if task.status in RUNNING:
                job = await self._job(execution, target)
                if job is not None:
                    await self.processors[job.node.type].cancel(job)
        return await self.get(org_id, execution_id)

    async def retry(self, org_id: str, execution_id: str) -> Execution:
        """A new run of the failed and cancelled nodes and what is downstream of them."""
        previous = await self.get(org_id, execution_id)
        if not previous.status.terminal:
            raise NotRunnable(f"execution {execution_id!r} is still running")
        redo = {n for n, t in previous.tasks.items() if t.status is not TaskStatus.COMPLETED}
        if not redo:
            raise NotRunnable(f"execution {execution_id!r} has nothing to retry")
        flow = await self.canvas.get(org_id, previous.flow_id)
        present = {n.id for n in flow.nodes}
        plan = {
            node_id: [d for d in previous.tasks[node_id].depends_on if d in redo]
            for node_id in previous.tasks
            if node_id in redo and node_id in present
        }
        if not plan:
            raise NotRunnable("the nodes to retry are no longer on the canvas")
        for node_id in plan:
            self.metrics.user_retries.labels(previous.tasks[node_id].node_type).inc()
        return await self._create(
            org_id, flow, ExecutionKind.RETRY, plan, None, execution_id, previous.reuse
        )

    async def reap(self) -> int:
        """Re-drive PROCESSING tasks that no job of this process runs; return how many."""
        redriven = 0
        for execution_id in await self.store.active_ids():
            live = self._live.get(execution_id)
            if live is not None and not self._orphans(live) and not self._startable(live):
                continue  # the usual case, thousands of times a pass: every job is running
            execution = await self.store.get_any(execution_id)  # as stored, not as we think
            if execution is not None:
                if live is not None and live.version != execution.version:
                    self._live.pop(execution_id, None)  # a write whose answer was lost
                redriven += await self._redrive(execution)
                # A start or an end that a database outage interrupted is made again.
                await self._schedule(execution_id)
        return redriven

    async def _redrive(self, execution: Execution) -> int:
        """Resume the orphaned tasks of one execution; return how many."""
        redriven = 0
        for node_id in self._orphans(execution):
            task = execution.tasks[node_id]
            job = await self._job(execution, node_id)
            if job is not None and task.output_asset_id:
                await self.processors[job.node.type].resume(job, task.output_asset_id)
                self.metrics.redriven.labels(task.node_type).inc()
                redriven += 1
        return redriven

    def _orphans(self, execution: Execution) -> list[str]:
        """Nodes of PROCESSING tasks that no job of this process is running."""
        return [
            node_id
            for node_id, task in execution.tasks.items()
            if task.status in RUNNING and not self.runner.running(f"{execution.id}:{node_id}")
        ]

    async def resume(self) -> int:
        """Pick up every unfinished execution after a start-up; return how many tasks."""
        resumed = 0
        for execution in await self.store.active():
            for node_id, task in execution.tasks.items():
                if task.status in RUNNING and task.output_asset_id:
                    job = await self._job(execution, node_id)
                    if job is not None:
                        await self.processors[job.node.type].resume(job, task.output_asset_id)
                        self.metrics.resumed.labels(task.node_type).inc()
                        resumed += 1
            await self._schedule(execution.id)
        if resumed:
            _LOGGER.info("resumed tasks after start-up", extra={"count": resumed})
        return resumed

    @on(HandlerFailed.EVENT)
    async def on_handler_failed(self, event: HandlerFailed) -> None:
        """A listener gave up on a job's event: the job's task ends FAILED."""
        source = event.event
        if not isinstance(source, AssetUpdated):
            return
        message = f"{event.handler} failed after {event.attempts} attempts: {event.error}"
        change = TaskChange(
            status=TaskStatus.FAILED, error=TaskError(code=HANDLER_FAILED, message=message)
        )
        if await self.update_task(source.execution_id, source.node_id, change) is not None:
            self.runner.cancel(f"{source.execution_id}:{source.node_id}")


def _job(execution: Execution, flow: Flow, node: Node) -> Job:
    """The job of one node of this execution, on this version of its flow."""
    return Job(
        execution.org_id,
        execution.id,
        flow,
        node,
        execution.reuse,
        interactive=execution.kind is ExecutionKind.NODE,
    )


async def _abandon(launches: list[Launch]) -> None:
    """Give back what launches that will never begin took (their budget reservations)."""
    for launch in launches:
        if launch.abandon is None:
            continue
        try:
            await launch.abandon()
        except Exception:  # never mask why the run did not start (often the same outage)
            _LOGGER.warning("could not give back a launch's reservation", exc_info=True)
