"""SIGTERM and SIGINT taken by a thread, so that a stuck event loop still stops.

A loop's own signal handlers run on the loop: a loop stuck in C (it was, in a fork that
never exec'd) never sees SIGTERM, and the service neither works nor dies. Here both
signals are blocked in every thread (`block()` before any thread exists; threads inherit
the mask, and children get a clean one from flowboard/process/spawn.py) and one thread
takes them with sigwait: the first asks the loop to stop gracefully; a second one, or
`deadline_seconds` without the process having exited, ends it hard after logging every
thread's stack.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable

from flowboard.process.stuck import exit_hard

_LOGGER = logging.getLogger(__name__)
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def block() -> None:
    """Block SIGTERM and SIGINT in this thread and every thread it starts from now on."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def unblock() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class StopRequest:
    """A stop asked for from any thread (or before the loop runs), awaited on the loop."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def request(self) -> None:
        """Ask for the stop; safe from any thread, also while the loop is stuck."""
        self._requested.set()
        loop, event = self._loop, self._event
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if not self._requested.is_set():  # else asked before the loop was known
            await self._event.wait()


class StopSignals:
    """The thread `flowboard-signals`: one stop request, then a bounded wait for the end."""

    def __init__(self, request_stop: Callable[[], None], deadline_seconds: float) -> None:
        self._request_stop = request_stop
        self.deadline_seconds = deadline_seconds
        self._thread = threading.Thread(target=self._run, name="flowboard-signals", daemon=True)

    def start(self) -> None:
        """Start taking the signals (they must already be blocked: see `block`)."""
        self._thread.start()

    def _run(self) -> None:
        first = signal.Signals(signal.sigwait(STOP_SIGNALS))
        _LOGGER.info(
            "%s: stopping (at most %.0f s)",
            first.name,
            self.deadline_seconds,
            extra={"signal": first.name},
        )
        self._request_stop()
        second = signal.sigtimedwait(STOP_SIGNALS, self.deadline_seconds)
        if second is None:
            exit_hard(_LOGGER, f"still running {self.deadline_seconds:.0f} s after {first.name}")
        else:
            exit_hard(_LOGGER, f"second stop signal ({signal.Signals(second.si_signo).name})")
