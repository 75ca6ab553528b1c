"""Stopping background tasks within a deadline (every shutdown phase has one)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
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
