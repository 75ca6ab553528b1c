"""Run nodes and flows: create the execution, start ready tasks, cancel, retry, recover.

Every task change goes through `ExecutionState.update_task` (`state.py`), which persists
first and then publishes, and hands a task's end to the scheduler (`scheduler.py`), which
starts what became ready. This module adds what a caller asks of runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flowboard.budgets.service import Budgets
from flowboard.canvas.model import Flow
from flowboard.errors import ErrorCode, InvalidRequest
from flowboard.events.bus import on
from flowboard.events.types import AssetUpdated, HandlerFailed
from flowboard.ids import utcnow
from flowboard.models.execution import (
    RUNNING,
    Execution,
    ExecutionKind,
    TaskError,
    TaskStatus,
)
from flowboard.runs.changes import TaskChange, apply_change
from flowboard.runs.creation import IDEMPOTENCY_WINDOW, abandon, job_of, new_execution, retry_plan
from flowboard.runs.dependencies import flow_plan, is_runnable
from flowboard.runs.planner import RunPlan, RunPlanner, with_estimates
from flowboard.runs.port import Launch
from flowboard.runs.scheduler import RunScheduler
from flowboard.runs.state import ExecutionNotFound
from flowboard.runs.targets import restrict

__all__ = ["ExecutionEngine", "ExecutionNotFound", "NotRunnable"]

_LOGGER = logging.getLogger(__name__)
HANDLER_FAILED = "handler_failed"


class NotRunnable(InvalidRequest):
    """The node cannot be run (missing, or of an input-only type)."""


@dataclass
class ExecutionEngine(RunScheduler):
    """Creates runs (idempotently), answers for them, cancels, retries and recovers them."""

    planner: RunPlanner | None = None  # estimates and dry runs (runs/planner.py)
    budgets: Budgets | None = None  # spend limits per organisation (flowboard/budgets/)

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
        execution = new_execution(org_id, flow, kind, plan, client_request_id)
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
            await abandon(launches)
            raise
        if inserted is None:  # a concurrent request with the same key inserted first
            await abandon(launches)
            assert client_request_id is not None
            return await self._inserted_by_another(execution, client_request_id, since)
        self.state.live[execution.id] = execution
        _LOGGER.info(
            "execution created",
            extra={"execution_id": execution.id, "flow_id": flow.id, "tasks": len(plan)},
        )
        self.state.publisher.publish(execution)
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
            await abandon(launches)
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
        job = job_of(execution, flow, node)
        try:
            launch = await self.processors[node.type].prepare(job)
        except InvalidRequest as exc:
            error = TaskError(code=exc.code.value, message=exc.message)
            change = TaskChange(status=TaskStatus.FAILED, error=error)
            return apply_change(execution, node_id, change), None
        return apply_change(execution, node_id, launch.change), launch

    # -- reading -------------------------------------------------------------------

    async def get(self, org_id: str, execution_id: str) -> Execution:
        return await self.state.get(org_id, execution_id)

    async def list_for_flow(
        self, org_id: str, flow_id: str, offset: int, limit: int
    ) -> tuple[list[Execution], int]:
        await self.canvas.get(org_id, flow_id)
        return await self.store.list_for_flow(org_id, flow_id, offset, limit)

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
        if all(t.status is TaskStatus.COMPLETED for t in previous.tasks.values()):
            raise NotRunnable(f"execution {execution_id!r} has nothing to retry")
        flow = await self.canvas.get(org_id, previous.flow_id)
        plan = retry_plan(previous, flow)
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
            live = self.state.live.get(execution_id)
            if live is not None and not self._orphans(live) and not self._startable(live):
                continue  # the usual case, thousands of times a pass: every job is running
            execution = await self.store.get_any(execution_id)  # as stored, not as we think
            if execution is not None:
                if live is not None and live.version != execution.version:
                    self.state.live.pop(execution_id, None)  # a write whose answer was lost
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
