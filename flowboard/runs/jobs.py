"""Background jobs: named, tracked, cancellable on request, and stopped in two phases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

_LOGGER = logging.getLogger(__name__)


def _job_ids(key: str) -> dict[str, str]:
    """The ids a job's key names (execution id : node id [: step])."""
    execution_id, _, rest = key.partition(":")
    node_id, _, step = rest.partition(":")
    return {"job": key, "execution_id": execution_id, "node_id": node_id, "step": step}


@dataclass
class JobRunner:
    """Keeps every background job of the process by key (execution id : node id)."""

    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _cancel_requested: set[str] = field(default_factory=set)
    closing: bool = False

    def spawn(self, key: str, coro: Coroutine[Any, Any, None]) -> bool:
        """Start a job unless one with this key is running; return whether it started."""
        if self.closing or key in self._tasks:
            coro.close()
            return False
        task = asyncio.create_task(coro, name=f"job:{key}")
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._forget(key, task))
        return True

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
            self._cancel_requested.discard(key)
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so asyncio never reports it at GC
        if error is not None:
            # A job handles every failure it expects; anything else would vanish unseen.
            _LOGGER.error("job crashed: %s", error, exc_info=error, extra=_job_ids(key))

    def running(self, key: str) -> bool:
        return key in self._tasks

    def cancel(self, key: str) -> bool:
        """Cancel a job on a user's request (the job then cancels at the provider)."""
        task = self._tasks.get(key)
        if task is None:
            return False
        self._cancel_requested.add(key)
        task.cancel()
        return True

    def cancel_requested(self, key: str) -> bool:
        return key in self._cancel_requested

    def __len__(self) -> int:
        return len(self._tasks)

    async def shutdown(self, grace: float) -> None:
        """Wait up to `grace` seconds, then cancel what is left (it resumes after restart)."""
        self.closing = True
        tasks = set(self._tasks.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            _LOGGER.info("jobs left for resume after restart", extra={"count": len(pending)})
            await asyncio.wait(pending, timeout=5.0)
        for task in pending:
            if not task.done():
                _LOGGER.warning("job ignored cancellation", extra={"job": task.get_name()})
