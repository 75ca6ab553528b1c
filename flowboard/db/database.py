"""The MongoDB client, its collections, and their indexes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import pymongo
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from flowboard.db.batching import BatchedCollection

_LOGGER = logging.getLogger(__name__)

Document = dict[str, Any]


class DatabaseUnavailable(Exception):
    """The configured database did not answer."""


@dataclass
class Database:
    """One client and the collections Flowboard keeps."""

    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    _batched: dict[str, BatchedCollection] = field(default_factory=dict)

    def batched(self, name: str) -> BatchedCollection:
        """Batched inserts and `_id` lookups on a collection (for the hot paths)."""
        found = self._batched.get(name)
        if found is None:
            found = self._batched[name] = BatchedCollection(self.db[name])
        return found

    @property
    def flows(self) -> AsyncCollection[Document]:
        return self.db["flows"]

    @property
    def flow_parts(self) -> AsyncCollection[Document]:
        """A flow's nodes and edges, in parts its head in `flows` names (canvas/write.py)."""
        return self.db["flow_parts"]

    @property
    def executions(self) -> AsyncCollection[Document]:
        return self.db["executions"]

    @property
    def assets(self) -> AsyncCollection[Document]:
        return self.db["assets"]

    @property
    def tokens(self) -> AsyncCollection[Document]:
        return self.db["tokens"]

    async def ping(self) -> bool:
        try:
            await self.db.command("ping")
        except PyMongoError:
            return False
        return True

    async def ensure_indexes(self) -> None:
        """Create every index the queries rely on (idempotent)."""
        await self.flows.create_index([("orgId", ASCENDING), ("updatedAt", DESCENDING)])
        await self.executions.create_index(
            [("orgId", ASCENDING), ("flowId", ASCENDING), ("createdAt", DESCENDING)]
        )
        await self.executions.create_index([("status", ASCENDING)])
        await self.executions.create_index(
            [("orgId", ASCENDING), ("clientRequestId", ASCENDING)],
            unique=True,
            partialFilterExpression={"clientRequestId": {"$type": "string"}},
        )
        await self.assets.create_index([("executionId", ASCENDING), ("nodeId", ASCENDING)])
        await self.assets.create_index([("status", ASCENDING)])
        await self.assets.create_index(  # reuse of unchanged results (runs/reuse.py)
            [
                ("orgId", ASCENDING),
                ("flowId", ASCENDING),
                ("nodeId", ASCENDING),
                ("contentKey", ASCENDING),
                ("updatedAt", DESCENDING),
            ]
        )
        await self.assets.create_index(  # a node's takes, newest first
            [
                ("orgId", ASCENDING),
                ("flowId", ASCENDING),
                ("nodeId", ASCENDING),
                ("status", ASCENDING),
                ("updatedAt", DESCENDING),
            ]
        )
        await self.tokens.create_index([("hash", ASCENDING)], unique=True)
        await self.tokens.create_index([("orgId", ASCENDING), ("createdAt", ASCENDING)])

    async def close(self) -> None:
        await self.client.close()


async def connect(
    uri: str,
    name: str,
    timeout: float,
    *,
    server_selection_timeout: float = 30.0,
    socket_timeout: float | None = None,
    connect_timeout: float = 20.0,
    retries: bool = True,
) -> Database:
    """Connect, wait up to `timeout` for the server to answer, and create indexes.

    The other timeouts stay on the client for every later call: short ones make a dead
    or hung database an error within seconds instead of a request that hangs. `retries`
    off: a failed call is not retried by the driver (which would wait out the same
    timeouts again against a single server); callers recover from what is stored.
    """
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=int(server_selection_timeout * 1000),
        socketTimeoutMS=None if socket_timeout is None else int(socket_timeout * 1000),
        connectTimeoutMS=int(connect_timeout * 1000),
        retryReads=retries,
        retryWrites=retries,
        tz_aware=True,
    )
    database = Database(client, client[name])
    try:
        await _first_ping(database, timeout)
        await database.ensure_indexes()
    except PyMongoError as exc:
        await client.close()
        raise DatabaseUnavailable(f"database.uri: cannot reach {uri!r}: {exc}") from exc
    return database


async def _first_ping(database: Database, timeout: float) -> None:
    """Ping until the server answers or `timeout` has passed (then raise the last error)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            with pymongo.timeout(max(0.1, deadline - loop.time())):
                await database.db.command("ping")
        except PyMongoError:
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            return
