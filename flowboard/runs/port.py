"""What the execution engine asks of a node processor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from flowboard.canvas.model import Flow, Node
from flowboard.runs.changes import TaskChange, TaskUpdater


@dataclass(frozen=True)
class Job:
    """One node run: the flow as it was when the run started, and where to report.

    reuse: the run may end at once with an unchanged earlier result (runs/reuse.py).
    interactive: a run-node; it waits for a provider slot before whole-flow runs do.
    """

    org_id: str
    execution_id: str
    flow: Flow
    node: Node
    reuse: bool = False
    interactive: bool = False  # run-node: queued before whole-flow runs (runs/queue.py)

    @property
    def key(self) -> str:
        return f"{self.execution_id}:{self.node.id}"

    def ids(self, asset_id: str) -> dict[str, str | None]:
        """The ids a log line or a trace span of this job carries."""
        return {
            "flow_id": self.flow.id,
            "execution_id": self.execution_id,
            "node_id": self.node.id,
            "asset_id": asset_id,
        }


@dataclass(frozen=True)
class Launch:
    """A task about to start: the change that marks it PROCESSING, and the work to begin.

    Split in two so that a new run can write its tasks already PROCESSING in the one
    insert of the execution, and begin the work only once that insert succeeded. A launch
    that will never begin (the insert lost an idempotency race or failed, the change was
    refused) is abandoned: what preparing it took, a budget reservation, is given back.
    """

    change: TaskChange
    begin: Callable[[], None]
    abandon: Callable[[], Awaitable[None]] | None = None


__all__ = ["Job", "Launch", "NodeProcessor", "TaskUpdater"]


class NodeProcessor(Protocol):
    """Runs the node types it is registered for on the engine (one may serve several)."""

    async def check(self, flow: Flow, node: Node) -> None:
        """Raise InvalidRequest (a 422) for a node that cannot run as configured."""

    async def prepare(self, job: Job) -> Launch:
        """Build what starting the job takes, writing nothing (InvalidRequest if it can't)."""

    async def process_job(self, job: Job) -> None:
        """Mark the task PROCESSING and start the work in the background; return at once."""

    async def resume(self, job: Job, asset_id: str) -> None:
        """Pick up a task that was PROCESSING when the process stopped."""

    async def cancel(self, job: Job) -> None:
        """Stop the work of a running task (the task ends CANCELLED)."""
