"""Which servers use this database: each one's row in `servers`, renewed while it runs.

A server is its host and data directory: the same server restarted (even after a kill
-9) takes over its own row, a second one on another host or data directory adds one.
Another server whose row was renewed lately is present; a local media directory that is
not declared shared then refuses the start, since that server could not read this
one's files (nor this one the other's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from flowboard.config import Settings
from flowboard.db.database import Database
from flowboard.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)

COLLECTION = "servers"
HEARTBEAT_SECONDS = 10.0
# A row older than this is a server gone (killed, its host down).
PRESENT_SECONDS = 30.0


class MediaNotShared(Exception):
    """Another server uses this database and this one's local media is its own."""


@dataclass
class Presence:
    """This server's row, and a look at the others'."""

    collection: AsyncCollection[dict[str, Any]]
    server_id: str

    async def others(self) -> list[dict[str, Any]]:
        since = datetime.now(UTC) - timedelta(seconds=PRESENT_SECONDS)
        query = {"_id": {"$ne": self.server_id}, "seenAt": {"$gte": since}}
        return [doc async for doc in self.collection.find(query)]

    async def renew(self) -> None:
        doc = {"host": socket.gethostname(), "pid": os.getpid(), "seenAt": datetime.now(UTC)}
        await self.collection.update_one({"_id": self.server_id}, {"$set": doc}, upsert=True)

    async def heartbeat(self) -> None:
        """Renew the row every few seconds; log once while it fails, once when it recovers."""
        failing = False
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.renew()
            except PyMongoError as exc:
                if not failing:
                    _LOGGER.warning("server presence not renewed: %s", exc)
                failing = True
                continue
            if failing:
                _LOGGER.info("server presence renewed again")
            failing = False

    async def leave(self) -> None:
        with contextlib.suppress(PyMongoError):
            await self.collection.delete_one({"_id": self.server_id})


def _check_media(settings: Settings, others: list[dict[str, Any]]) -> None:
    storage = settings.storage
    if not others or storage.backend != "local" or storage.shared_media:
        return
    other = others[0]
    raise MediaNotShared(
        f"another Flowboard server ({other.get('host')}, pid {other.get('pid')}) uses this "
        f"database, and local media under {settings.data_path / 'media'} is this server's "
        'own: set storage.backend = "s3", or storage.shared_media = true if that '
        "directory is one mount shared by every server"
    )


@contextlib.asynccontextmanager
async def present(settings: Settings, database: Database) -> AsyncIterator[Presence]:
    """Refuse to start beside another server unless media is shared; be seen while running."""
    server_id = f"{socket.gethostname()}:{settings.data_path}"
    presence = Presence(database.db[COLLECTION], server_id)
    _check_media(settings, await presence.others())
    await presence.renew()
    task = asyncio.create_task(presence.heartbeat(), name="flowboard.server-presence")
    try:
        yield presence
    finally:
        await cancel_and_wait({task}, "server presence")
        await presence.leave()
