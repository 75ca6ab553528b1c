"""Open the database for a command while `flowboard serve` may be holding it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from flowboard import runfiles
from flowboard.config import Settings
from flowboard.db.database import Database, connect
from flowboard.db.lifecycle import open_database

_LOGGER = logging.getLogger(__name__)


def running_embedded_uri(settings: Settings) -> str | None:
    """The URI of the embedded database a running process published, if any."""
    if settings.database.uri:
        return None
    found = runfiles.read(settings.data_path, runfiles.DATABASE_FILE)
    if found is None or not found.port:
        return None
    return f"mongodb://127.0.0.1:{found.port}/?directConnection=true"


@contextlib.asynccontextmanager
async def open_shared_database(settings: Settings) -> AsyncIterator[Database]:
    """The running embedded database when there is one (it locks its data), else open ours."""
    uri = running_embedded_uri(settings)
    if uri is None:
        async with open_database(settings) as database:
            yield database
        return
    _LOGGER.debug("using the running embedded database", extra={"uri": uri})
    database = await connect(uri, settings.database.name, settings.database.startup_timeout_seconds)
    try:
        yield database
    finally:
        await database.close()
