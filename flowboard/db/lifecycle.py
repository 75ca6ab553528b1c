"""Open the configured database for as long as a block runs (the service or one command)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from flowboard.config import DatabaseSettings, Settings
from flowboard.db.database import Database, connect
from flowboard.db.embedded import EmbeddedMongo
from flowboard.db.supervisor import DatabaseSupervisor, RestartPolicy


@dataclass(frozen=True)
class OpenDatabase:
    """The connected database and, for the embedded one of a service, its supervisor."""

    database: Database
    supervisor: DatabaseSupervisor | None


def restart_policy(settings: DatabaseSettings) -> RestartPolicy:
    return RestartPolicy(
        backoff_seconds=settings.restart_backoff_seconds,
        backoff_max_seconds=settings.restart_backoff_max_seconds,
        max_restarts=settings.max_restarts,
        window_seconds=settings.restart_window_seconds,
        startup_timeout_seconds=settings.startup_timeout_seconds,
    )


async def _connect(uri: str, settings: DatabaseSettings, embedded: bool) -> Database:
    return await connect(
        uri,
        settings.name,
        settings.startup_timeout_seconds,
        server_selection_timeout=settings.server_selection_timeout_seconds,
        socket_timeout=settings.socket_timeout_seconds,
        connect_timeout=settings.connect_timeout_seconds,
        # One embedded server: a driver retry could only meet the same dead or hung
        # process. An external deployment (a replica set) keeps the driver's retries.
        retries=not embedded,
    )


@contextlib.asynccontextmanager
async def open_supervised(
    settings: Settings, on_give_up: Callable[[], None] | None = None
) -> AsyncIterator[OpenDatabase]:
    """Connect to database.uri, or start the embedded server first when it is empty.

    With `on_give_up`, the embedded server is restarted when it dies, and `on_give_up`
    is called once it died too often.
    """
    embedded: EmbeddedMongo | None = None
    supervisor: DatabaseSupervisor | None = None
    uri = settings.database.uri
    if not uri:
        embedded = EmbeddedMongo(settings.data_path / "db")
        await embedded.start(settings.database.startup_timeout_seconds)
        uri = embedded.uri
        if on_give_up is not None:
            supervisor = DatabaseSupervisor(embedded, restart_policy(settings.database), on_give_up)
            supervisor.start()
    try:
        database = await _connect(uri, settings.database, embedded is not None)
        try:
            yield OpenDatabase(database, supervisor)
        finally:
            await database.close()
    finally:
        if supervisor is not None:
            await supervisor.stop()
        if embedded is not None:
            await embedded.stop()


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """Connect to database.uri, or start the embedded server first when it is empty."""
    async with open_supervised(settings) as opened:
        yield opened.database
