"""The event bus on its own: retries, backoff, give-up, and independence of handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from itertools import pairwise

import pytest

from flowboard.events.bus import EventBus
from flowboard.events.types import AssetUpdated, HandlerFailed

BACKOFF = 0.05


def _event() -> AssetUpdated:
    return AssetUpdated(
        asset_id="a1",
        org_id="o",
        flow_id="f",
        execution_id="e",
        node_id="n",
        status="PROCESSING",
        progress=10.0,
    )


class Flaky:
    """Fails its first `failures` calls, recording when each call came."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[float] = []

    async def __call__(self, event: AssetUpdated) -> None:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise RuntimeError(f"failure {len(self.calls)}")


async def _deliver_to_flaky(failures: int, attempts: int) -> tuple[Flaky, list[HandlerFailed]]:
    """Deliver one event to a lone handler failing its first `failures` calls.

    Returns the handler (its calls) and the handler.failed events the bus published.
    """
    bus = EventBus(attempts=attempts, backoff_seconds=BACKOFF)
    handler = Flaky(failures)
    bus.listen(AssetUpdated.EVENT, handler)
    gave_up: list[HandlerFailed] = []

    async def on_failed(event: HandlerFailed) -> None:
        gave_up.append(event)

    bus.listen(HandlerFailed.EVENT, on_failed)
    await bus.deliver(_event())
    return handler, gave_up


async def test_a_handler_that_succeeds_runs_once() -> None:
    handler, gave_up = await _deliver_to_flaky(failures=0, attempts=3)
    assert gave_up == []
    assert len(handler.calls) == 1


async def test_failing_twice_then_succeeding_is_retried_with_growing_waits() -> None:
    handler, gave_up = await _deliver_to_flaky(failures=2, attempts=3)
    assert gave_up == []
    assert len(handler.calls) == 3
    first_wait, second_wait = (b - a for a, b in pairwise(handler.calls))
    assert first_wait >= BACKOFF * 0.9
    assert second_wait >= 2 * BACKOFF * 0.9


async def test_a_handler_that_always_fails_gives_up_after_the_bound() -> None:
    handler, gave_up = await _deliver_to_flaky(failures=100, attempts=4)
    assert len(handler.calls) == 4
    assert len(gave_up) == 1
    assert gave_up[0].attempts == 4
    assert gave_up[0].error == "RuntimeError: failure 4"
    assert isinstance(gave_up[0].event, AssetUpdated)


async def test_one_attempt_means_no_retry() -> None:
    handler, gave_up = await _deliver_to_flaky(failures=100, attempts=1)
    assert len(handler.calls) == 1
    assert [g.error for g in gave_up] == ["RuntimeError: failure 1"]


async def test_a_failing_handler_does_not_hold_up_another() -> None:
    bus = EventBus(attempts=3, backoff_seconds=0.5)
    failing, healthy = Flaky(100), Flaky(0)
    bus.listen(AssetUpdated.EVENT, failing)
    bus.listen(AssetUpdated.EVENT, healthy)
    delivery = asyncio.create_task(bus.deliver(_event()))
    await asyncio.sleep(0.1)
    assert len(healthy.calls) == 1  # done while the other waits for its retry
    assert not delivery.done()
    await delivery
    assert len(failing.calls) == 3


async def test_a_handler_that_gives_up_logs_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _deliver_to_flaky(failures=5, attempts=2)
    [record] = [r for r in caplog.records if r.getMessage().startswith("event handler gave up")]
    assert record.levelno == logging.WARNING and record.exc_info is not None
    error = record.exc_info[1]
    assert isinstance(error, RuntimeError) and str(error) == "failure 2"
    assert record.__dict__["handler"] == "Flaky" and record.__dict__["event"] == "asset.updated"


async def test_close_bounds_handlers_that_ignore_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus(attempts=1)
    release = asyncio.Event()
    cancelled = asyncio.Event()

    async def stubborn(event: AssetUpdated) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await release.wait()  # swallows the cancellation until released

    bus.listen(AssetUpdated.EVENT, stubborn)
    bus.publish(_event())
    await asyncio.sleep(0)
    await bus.close(timeout=0.05)  # returns although the handler is still unwinding
    assert cancelled.is_set() and not release.is_set()
    assert any("event handler did not stop" in r.getMessage() for r in caplog.records)
    release.set()
    await asyncio.sleep(0)
