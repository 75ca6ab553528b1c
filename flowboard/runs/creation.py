"""New executions and their jobs: the records a run starts from, before anything is written."""

from __future__ import annotations

import logging
from datetime import timedelta

from flowboard.canvas.model import Flow, Node
from flowboard.ids import new_id, utcnow
from flowboard.models.execution import Execution, ExecutionKind, Task, TaskStatus
from flowboard.runs.port import Job, Launch

_LOGGER = logging.getLogger(__name__)
# A client request id names one execution for this long (a repeated request gets it back).
IDEMPOTENCY_WINDOW = timedelta(hours=24)


def new_execution(
    org_id: str,
    flow: Flow,
    kind: ExecutionKind,
    plan: dict[str, list[str]],
    client_request_id: str | None,
) -> Execution:
    """A PENDING execution of `plan` (node id -> the node ids it waits for)."""
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


def retry_plan(previous: Execution, flow: Flow) -> dict[str, list[str]]:
    """The failed and cancelled nodes still on the canvas, waiting only for each other."""
    redo = {n for n, t in previous.tasks.items() if t.status is not TaskStatus.COMPLETED}
    present = {n.id for n in flow.nodes}
    return {
        node_id: [d for d in previous.tasks[node_id].depends_on if d in redo]
        for node_id in previous.tasks
        if node_id in redo and node_id in present
    }


def job_of(execution: Execution, flow: Flow, node: Node) -> Job:
    """The job of one node of this execution, on this version of its flow."""
    return Job(
        execution.org_id,
        execution.id,
        flow,
        node,
        execution.reuse,
        interactive=execution.kind is ExecutionKind.NODE,
    )


async def abandon(launches: list[Launch]) -> None:
    """Give back what launches that will never begin took (their budget reservations)."""
    for launch in launches:
        if launch.abandon is None:
            continue
        try:
            await launch.abandon()
        except Exception:  # never mask why the run did not start (often the same outage)
            _LOGGER.warning("could not give back a launch's reservation", exc_info=True)
