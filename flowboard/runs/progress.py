"""How a job's progress reaches its task: throttled, monotonic, whole percents."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from pymongo.errors import PyMongoError

from flowboard.config import ExecutionSettings
from flowboard.db.outage import is_outage
from flowboard.errors import StaleWrite
from flowboard.providers.base import Progress
from flowboard.runs.changes import TaskChange
from flowboard.runs.port import Job, TaskUpdater
from flowboard.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)


@dataclass
class ProgressReporter:
    """Throttled, monotonic, whole-percent progress of one job, kept on its task.

    The task owns the job's progress: a report is one task change (one write, then
    EXECUTION_UPDATE on the flow's stream); an estimated report is shown, not written
    (`update_task(store=False)`). Reporting never waits for the database:
    a write runs in the background and, while it is in flight, newer progress replaces
    what waits for the next one. So a slow database makes progress coarser, never the
    provider's polls later.
    """

    tasks: TaskUpdater
    job: Job
    asset_id: str
    settings: ExecutionSettings
    last_sent: float = -math.inf
    best: float = 0.0
    _waiting: Progress | None = None
    _writer: asyncio.Task[None] | None = None

    async def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        # Whole percents: what a canvas shows, and each one stored costs a write.
        percent = float(min(99, math.floor(progress.percent)))
        settings = self.settings
        if progress.estimated:
            interval = settings.estimated_progress_interval_seconds
            floor = self.best + max(1.0, settings.estimated_progress_step)
        else:
            interval, floor = settings.progress_min_interval_seconds, self.best + 1.0
        if percent < floor or now - self.last_sent < interval:
            return
        self.best, self.last_sent = percent, now
        self._waiting = Progress(percent, progress.estimated)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name=f"progress:{self.asset_id}")

    async def _write(self) -> None:
        try:
            await self._write_waiting()
        finally:
            self._writer = None  # a finished task kept per job adds up over thousands

    async def _write_waiting(self) -> None:
        job = self.job
        while (progress := self._waiting) is not None:
            self._waiting = None
            change = TaskChange(
                progress=progress.percent,
                estimated=progress.estimated,
                description=f"generating ({progress.percent:.0f}%)",
            )
            # An estimate is a guess from elapsed time: shown live, never worth a write.
            store = not progress.estimated
            try:
                await self.tasks.update_task(job.execution_id, job.node.id, change, store=store)
            except (PyMongoError, StaleWrite) as exc:  # the next report tries again
                # An outage is logged once by the health watcher, not once a report a job.
                log = _LOGGER.debug if is_outage(exc) else _LOGGER.warning
                log(
                    "progress not stored: %s",
                    exc,
                    extra={"asset_id": self.asset_id, "execution_id": job.execution_id},
                )

    async def flush(self) -> None:
        """Wait for the progress still being stored (before the job's final write)."""
        if self._writer is not None:
            await self._writer

    async def close(self) -> None:
        """The job ended: progress not yet stored no longer matters; stop its writer."""
        self._waiting = None
        if self._writer is not None:
            # Awaited, so no write of this job can land after its final one.
            await cancel_and_wait({self._writer}, f"progress writer of {self.asset_id}")
