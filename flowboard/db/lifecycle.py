"""Open the configured database for as long as a block runs (the service or one command)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from flowboard.config import Settings
from flowboard.db.database import Database, connect
from flowboard.db.embedded import EmbeddedMongo


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """Connect to database.uri, or start the embedded server first when it is empty."""
    embedded: EmbeddedMongo | None = None
    uri = settings.database.uri
    timeout = settings.database.startup_timeout_seconds
    if not uri:
        embedded = EmbeddedMongo(settings.data_path / "db")
        await embedded.start(timeout)
        uri = embedded.uri
    try:
        database = await connect(uri, settings.database.name, timeout)
        try:
            yield database
        finally:
            await database.close()
    finally:
        if embedded is not None:
            await embedded.stop()
