"""The job runner on its own: an unexpected exception of a job is logged with its ids."""

from __future__ import annotations

import asyncio
import logging

import pytest

from flowboard.runs.jobs import JobRunner


@pytest.mark.allow_errors
async def test_a_job_that_crashes_is_logged_with_its_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = JobRunner()

    async def crash() -> None:
        raise ValueError("boom")

    assert runner.spawn("exec_1:node_a", crash())
    while runner.running("exec_1:node_a"):
        await asyncio.sleep(0)
    [record] = [r for r in caplog.records if r.name == "flowboard.runs.jobs"]
    assert record.levelno == logging.ERROR and record.getMessage() == "job crashed: boom"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    ids = {k: record.__dict__[k] for k in ("job", "execution_id", "node_id")}
    assert ids == {"job": "exec_1:node_a", "execution_id": "exec_1", "node_id": "node_a"}


async def test_cancelled_and_finished_jobs_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    runner = JobRunner()
    started = asyncio.Event()

    async def wait_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def finish() -> None:
        return None

    runner.spawn("exec_1:a", wait_forever())
    runner.spawn("exec_1:b", finish())
    await started.wait()
    assert runner.cancel("exec_1:a") and runner.cancel_requested("exec_1:a")
    while len(runner):
        await asyncio.sleep(0)
    assert [r for r in caplog.records if r.name == "flowboard.runs.jobs"] == []
