"""Background loops that survive their failures, and stopping tasks within a deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

_LOGGER = logging.getLogger(__name__)

# How long a cancelled task may take to unwind (its finally blocks) before it is left.
CANCEL_DEADLINE_SECONDS = 5.0


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], what: str, deadline: float = CANCEL_DEADLINE_SECONDS
) -> set[asyncio.Task[Any]]:
    """Cancel `tasks`, wait at most `deadline` seconds; log and return those still running."""
    tasks = set(tasks)
    pending = {task for task in tasks if not task.done()}
    for task in pending:
        task.cancel()
    if pending:
        _, pending = await asyncio.wait(pending, timeout=deadline)
    for task in pending:
        _LOGGER.warning(
            "%s did not stop within %.1f s", what, deadline, extra={"task": task.get_name()}
        )
    for task in tasks - pending:
        # Retrieved here, or asyncio reports it at garbage collection with no context.
        error = None if task.cancelled() else task.exception()
        if error is not None:
            _LOGGER.warning(
                "%s ended with an error: %s",
                what,
                error,
                exc_info=error,
                extra={"task": task.get_name()},
            )
    return pending


async def supervised_loop(
    what: str,
    step: Callable[[], Awaitable[object]],
    wait: Callable[[], Awaitable[None]],
    is_outage: Callable[[Exception], bool] | None = None,
) -> None:
    """Run `step` after each `wait` until cancelled; a failing step never ends the loop.

    Logged once when the steps start failing (with the traceback) and once when one
    succeeds again, as Home Assistant's coordinator does: an outage is two lines, not
    one a pass. A failure that `is_outage` calls a database outage is logged as one
    warning, without a traceback. Run it as a named task, stop it with `cancel_and_wait`.
    """
    failing = False
    while True:
        await wait()
        try:
            await step()
        except Exception as exc:
            if not failing and is_outage is not None and is_outage(exc):
                _LOGGER.warning("%s pass failed: database unavailable (%s)", what, exc)
            elif not failing:
                _LOGGER.exception("%s pass failed", what)
            failing = True
        else:
            if failing:
                _LOGGER.info("%s recovered", what)
            failing = False
