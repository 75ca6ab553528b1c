"""What a stuck process says before it goes: every thread's stack, then a hard exit."""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback

HARD_EXIT_STATUS = 1  # a failure: Restart=on-failure starts the service again


def all_stacks() -> str:
    """Each thread's name and id, then its stack, innermost call last."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"thread {names.get(ident, '?')} ({ident}):\n{stack}")
    return "\n".join(parts)


def exit_hard(logger: logging.Logger, reason: str) -> None:
    """Log why with every thread's stack, flush the log, and end the process at once.

    os._exit runs no clean-up: the loop that would run it is the thing that is stuck.
    Child processes get their parent-death signal (flowboard/process/launch.py).
    """
    logger.critical("%s; exiting now. Stacks of all threads:\n%s", reason, all_stacks())
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(HARD_EXIT_STATUS)
