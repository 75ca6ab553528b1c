"""The supervised background loop: it survives failing passes, logged once each way."""

from __future__ import annotations

import asyncio
import logging

import pytest

from flowboard.tasks import cancel_and_wait, supervised_loop


@pytest.mark.allow_errors
async def test_a_failing_pass_never_ends_the_loop_and_is_logged_once_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes = iter([True, False, False, False, True, True])
    passes: list[bool] = []
    done = asyncio.Event()

    async def step() -> None:
        ok = next(outcomes, True)  # after the script: passes go on succeeding
        passes.append(ok)
        if len(passes) >= 6:
            done.set()
        if not ok:
            raise RuntimeError("database away")

    task = asyncio.create_task(
        supervised_loop("sweeper", step, lambda: asyncio.sleep(0)), name="flowboard.test-loop"
    )
    await asyncio.wait_for(done.wait(), timeout=5)
    assert await cancel_and_wait({task}, "test loop") == set()
    assert passes[:6] == [True, False, False, False, True, True]
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "flowboard.tasks"]
    assert lines == [(logging.ERROR, "sweeper pass failed"), (logging.INFO, "sweeper recovered")]


async def test_an_outage_is_one_warning_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[int] = []
    done = asyncio.Event()

    async def step() -> None:
        passes.append(1)
        if len(passes) >= 3:
            done.set()
            return
        raise ConnectionError("refused")

    def outage(exc: Exception) -> bool:
        return isinstance(exc, ConnectionError)

    task = asyncio.create_task(
        supervised_loop("reaper", step, lambda: asyncio.sleep(0), outage), name="flowboard.t"
    )
    await asyncio.wait_for(done.wait(), timeout=5)
    await cancel_and_wait({task}, "test loop")
    records = [r for r in caplog.records if r.name == "flowboard.tasks"]
    assert [(r.levelno, r.getMessage(), r.exc_info) for r in records] == [
        (logging.WARNING, "reaper pass failed: database unavailable (refused)", None),
        (logging.INFO, "reaper recovered", None),
    ]
