"""Whether the database answers: outage errors, and a watcher that background work waits on.

A request that meets an outage answers 503 at once (`api/errors.py`); background work
(jobs, event handlers, the reaper) instead waits for the database to come back and
carries on from what is stored, so nothing is lost and nothing is written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pymongo
from pymongo.errors import ConnectionFailure, PyMongoError

from flowboard.db.database import Database
from flowboard.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)
# A busy database can miss one ping; two in a row (about 2 s) is an outage.
DOWN_AFTER_FAILED_PINGS = 2


def is_outage(exc: BaseException) -> bool:
    """True for errors that mean "the database did not answer", not "it refused".

    `ConnectionFailure` covers a refused or reset connection, a socket timeout (a hung
    server) and server selection timing out (a dead one).
    """
    return isinstance(exc, ConnectionFailure)


class DatabaseDown(ConnectionFailure):
    """Refused without calling the database: the health watcher sees it down."""


@dataclass
class DatabaseHealth:
    """The database's last known state, kept up to date by pinging it.

    available: False from an outage error of a call (or DOWN_AFTER_FAILED_PINGS failed
        pings in a row) until a ping answers again.
    down_since: monotonic time the current outage was first seen, or None.
    failed_pings: the watcher's failed pings in a row.
    """

    database: Database
    interval: float = 1.0
    ping_timeout: float = 1.0
    available: bool = True
    down_since: float | None = None
    failed_pings: int = 0
    _up: asyncio.Event = field(default_factory=asyncio.Event)
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._up.set()

    def on_recovered(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` each time the database answers again; return an unsubscriber."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def probe(self) -> PyMongoError | None:
        """Ping once within `ping_timeout` (server selection included); the error, if any."""
        try:
            with pymongo.timeout(self.ping_timeout):
                await self.database.db.command("ping")
        except PyMongoError as exc:
            return exc
        return None

    async def ping(self) -> bool:
        """Ping once (for /readyz); an answer also ends a recorded outage."""
        if await self.probe() is not None:
            return False
        self.mark_up()
        return True

    def mark_down(self, error: BaseException | str) -> None:
        """Record an outage (logged once, when it starts)."""
        if not self.available:
            return
        self.available = False
        self.down_since = time.monotonic()
        self._up.clear()
        _LOGGER.warning("database unavailable: %s", error)

    def mark_up(self) -> None:
        """Record that the database answers (logged once, when an outage ends)."""
        if self.available:
            return
        lasted = time.monotonic() - (self.down_since or time.monotonic())
        self.available, self.down_since = True, None
        self._up.set()
        _LOGGER.info("database available again", extra={"outage_seconds": round(lasted, 3)})
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                _LOGGER.exception("database recovery listener failed")

    async def wait_available(self) -> None:
        """Return once the database answers (at once when it is not known to be down)."""
        await self._up.wait()

    async def pause_for(self, error: BaseException) -> bool:
        """Background work met `error`: if an outage, wait until the database is back."""
        if not is_outage(error):
            return False
        self.mark_down(error)
        await self.wait_available()
        return True

    async def watch(self) -> None:
        """Ping every `interval` seconds until cancelled (task `flowboard.db-health`)."""
        while True:
            started = time.monotonic()
            error = await self.probe()
            if error is None:
                self.failed_pings = 0
                self.mark_up()
            else:
                self.failed_pings += 1
                if self.failed_pings >= DOWN_AFTER_FAILED_PINGS:
                    self.mark_down(error)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))


@contextlib.asynccontextmanager
async def watching(health: DatabaseHealth) -> AsyncIterator[DatabaseHealth]:
    """Run the health watcher for as long as the block runs."""
    task = asyncio.create_task(health.watch(), name="flowboard.db-health")
    try:
        yield health
    finally:
        await cancel_and_wait({task}, "database health watcher")
