"""`flowboard run`'s live view: one progress bar per node, from polled execution state."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from flowboard.commands.run_client import FlowboardClient

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
POLL_SECONDS = 0.5


def _describe(task: dict[str, Any]) -> str:
    status = str(task.get("status", ""))
    error = task.get("error") or {}
    if error:
        return f"{status} {error.get('code', '')}"
    detail = str(task.get("statusDescription") or "")
    return f"{status} {detail}".strip()


class NodeBars:
    """The bars of one execution's nodes, in the order the server lists them."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._bars: dict[str, TaskID] = {}

    def update(self, execution: dict[str, Any]) -> None:
        for node_id, task in execution.get("tasks", {}).items():
            label = f"{node_id} ({task.get('nodeType', '?')})"
            bar = self._bars.get(node_id)
            if bar is None:
                bar = self._progress.add_task(label, total=100, state="")
                self._bars[node_id] = bar
            done = 100.0 if task.get("status") == "COMPLETED" else float(task.get("progress", 0))
            self._progress.update(bar, completed=done, state=_describe(task))


def progress_view(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[state]}"),
        console=console,
    )


async def follow(
    client: FlowboardClient, execution: dict[str, Any], stop: asyncio.Event, console: Console
) -> dict[str, Any] | None:
    """Show the execution until it is terminal (its last state), or None once `stop` is set."""
    with progress_view(console) as progress:
        bars = NodeBars(progress)
        while True:
            bars.update(execution)
            if execution.get("status") in TERMINAL:
                return execution
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
            if stop.is_set():
                return None
            execution = await client.execution(str(execution["id"]))
