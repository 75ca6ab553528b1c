"""Notice an event loop that stopped running, say where it is stuck, and end it.

A heartbeat task on the loop stamps the time every tick and pings systemd's watchdog
(`WatchdogSec`: a loop that stops ticking stops the pings, and systemd restarts the
service). A thread that never needs the loop reads the stamp: once the loop has not run
for `stall_seconds` it logs every thread's stack (once a stall, and once when the loop
runs again); after `exit_after_seconds` it ends the process, so a service manager
without a watchdog restarts it too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flowboard.process.sdnotify import Notifier
from flowboard.process.stuck import all_stacks, exit_hard

_LOGGER = logging.getLogger(__name__)
MAX_TICK_SECONDS = 1.0


@dataclass(frozen=True)
class WatchdogPolicy:
    """stall_seconds: a loop silent this long is logged with every thread's stack.
    exit_after_seconds: a loop silent this long ends the process (0: never).
    """

    stall_seconds: float = 10.0
    exit_after_seconds: float = 60.0


class LoopWatchdog:
    """The loop's heartbeat (task `flowboard.process.heartbeat`) and the thread reading it."""

    def __init__(
        self,
        policy: WatchdogPolicy,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.notifier = notifier
        self._clock = clock
        self._last_tick = clock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self.tick_seconds = min(MAX_TICK_SECONDS, policy.stall_seconds / 4)
        if notifier is not None and notifier.watchdog_seconds is not None:
            # systemd's advice: ping at least twice per WatchdogSec.
            self.tick_seconds = min(self.tick_seconds, notifier.watchdog_seconds / 3)

    def start(self) -> None:
        """Start beating on the running loop and watching from a thread."""
        self._last_tick = self._clock()
        self._task = asyncio.get_running_loop().create_task(
            self._beat(), name="flowboard.process.heartbeat"
        )
        self._thread = threading.Thread(target=self._watch, name="flowboard-watchdog", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopped.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, self.tick_seconds * 2)

    async def _beat(self) -> None:
        while True:
            self._last_tick = self._clock()
            if self.notifier is not None and self.notifier.watchdog_seconds is not None:
                self.notifier.send("WATCHDOG=1")
            await asyncio.sleep(self.tick_seconds)

    def _watch(self) -> None:
        stalled_since: float | None = None
        while not self._stopped.wait(self.tick_seconds):
            silent = self._clock() - self._last_tick
            if silent < self.policy.stall_seconds:
                if stalled_since is not None:
                    stall = self._last_tick - stalled_since
                    _LOGGER.warning("event loop running again after a %.1f s stall", stall)
                    stalled_since = None
                continue
            if stalled_since is None:
                stalled_since = self._last_tick
                _LOGGER.error(
                    "event loop has not run for %.1f s; stacks of all threads:\n%s",
                    silent,
                    all_stacks(),
                    extra={"stalled_seconds": round(silent, 1)},
                )
            limit = self.policy.exit_after_seconds
            if limit and silent >= limit:
                exit_hard(_LOGGER, f"event loop has not run for {silent:.0f} s")
