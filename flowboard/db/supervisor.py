"""Keep the embedded database running: restart it when it dies, give up when it keeps dying.

Each death is logged with the exit status and the last lines of the server's own log.
The server comes back on the same port and data directory, so the client reconnects by
itself. After `max_restarts` deaths within `restart_window_seconds` the supervisor
gives up and asks the service to stop, so the service manager restarts the whole unit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flowboard.db.embedded import EmbeddedDatabaseError, EmbeddedMongo
from flowboard.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 16 * 1024


@dataclass(frozen=True)
class RestartPolicy:
    """When and how often a dead database is started again.

    backoff_seconds: delay before the first restart, doubled for each death still
        inside the window, up to backoff_max_seconds.
    max_restarts: deaths tolerated within window_seconds; one more and it gives up.
    startup_timeout_seconds: how long one restart may take to answer.
    """

    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 5.0
    max_restarts: int = 5
    window_seconds: float = 120.0
    startup_timeout_seconds: float = 20.0


def describe_exit(returncode: int | None) -> str:
    """`exit status 3`, or `killed by SIGKILL` for a negative return code."""
    if returncode is None:
        return "did not start"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file (read from its end only)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            data = handle.read()
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


@dataclass
class DatabaseSupervisor:
    """Watches one `EmbeddedMongo` child (task `flowboard.db-supervisor`).

    gave_up: the database died too often; the service was asked to stop.
    restarts: how many times it was started again.
    """

    server: EmbeddedMongo
    policy: RestartPolicy
    on_give_up: Callable[[], None]
    gave_up: bool = False
    restarts: int = 0
    _deaths: deque[float] = field(default_factory=deque)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flowboard.db-supervisor")

    async def stop(self) -> None:
        """Stop watching (before the server is stopped on purpose)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait({task}, "database supervisor")

    async def _run(self) -> None:
        while True:
            process = self.server.process
            returncode = None if process is None else await process.wait()
            self._report_death(returncode)
            if not await self._restart_until_up():
                return

    def _report_death(self, returncode: int | None) -> None:
        _LOGGER.error(
            "embedded database %s; last lines of its log:\n%s",
            describe_exit(returncode),
            log_tail(self.server.log_path),
            extra={"returncode": returncode, "port": self.server.port},
        )

    async def _restart_until_up(self) -> bool:
        """Start the server again with backoff; False once the policy says give up."""
        while True:
            now = time.monotonic()
            self._deaths.append(now)
            while self._deaths and now - self._deaths[0] > self.policy.window_seconds:
                self._deaths.popleft()
            if len(self._deaths) > self.policy.max_restarts:
                self._give_up()
                return False
            delay = self.policy.backoff_seconds * 2 ** (len(self._deaths) - 1)
            await asyncio.sleep(min(delay, self.policy.backoff_max_seconds))
            try:
                await self.server.start(self.policy.startup_timeout_seconds)
            except (EmbeddedDatabaseError, OSError) as exc:
                _LOGGER.error(
                    "embedded database restart failed: %s; last lines of its log:\n%s",
                    exc,
                    log_tail(self.server.log_path),
                )
                continue
            self.restarts += 1
            _LOGGER.warning(
                "embedded database restarted",
                extra={"restarts": self.restarts, "port": self.server.port},
            )
            return True

    def _give_up(self) -> None:
        self.gave_up = True
        _LOGGER.critical(
            "embedded database died %d times within %.0f s; stopping the service",
            len(self._deaths),
            self.policy.window_seconds,
        )
        self.on_give_up()
