"""The `audit` collection: append a record, read them back by organisation and filters.

Records expire `audit.retention_days` after they were written (a TTL index on `at`).
A record that cannot be written is logged instead and never fails the audited action:
the action already happened, and refusing its answer would not undo it.
"""

from __future__ import annotations

import getpass
import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure, PyMongoError

from flowboard.audit.model import AuditAction, AuditRecord
from flowboard.db.database import Database
from flowboard.db.documents import from_doc, to_doc
from flowboard.ids import new_id, utcnow

_LOGGER = logging.getLogger(__name__)
COLLECTION = "audit"
TTL_INDEX = "at_ttl"
DAY_SECONDS = 86_400


def cli_actor() -> tuple[str, str]:
    """(actor, source) of a command run on this machine."""
    host = socket.gethostname()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{host}", f"cli:{host}"


@dataclass(frozen=True)
class AuditFilter:
    """Which records to read; None fields do not filter."""

    org_id: str | None = None
    action: AuditAction | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> dict[str, Any]:
        query: dict[str, Any] = {}
        if self.org_id is not None:
            query["orgId"] = self.org_id
        if self.action is not None:
            query["action"] = self.action.value
        if self.actor is not None:
            query["actor"] = self.actor
        span = {k: v for k, v in (("$gte", self.since), ("$lt", self.until)) if v is not None}
        if span:
            query["at"] = span
        return query


@dataclass
class AuditLog:
    """Write and read audit records."""

    database: Database

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        return self.database.db[COLLECTION]

    async def ensure_indexes(self, retention_days: int) -> None:
        """The reading indexes and the TTL index, changed in place when retention changes."""
        await self.collection.create_index([("orgId", ASCENDING), ("at", DESCENDING)])
        await self.collection.create_index([("action", ASCENDING), ("at", DESCENDING)])
        seconds = retention_days * DAY_SECONDS
        try:
            await self.collection.create_index(
                [("at", ASCENDING)], name=TTL_INDEX, expireAfterSeconds=seconds
            )
        except OperationFailure:  # the index exists with another retention
            await self.collection.drop_index(TTL_INDEX)
            await self.collection.create_index(
                [("at", ASCENDING)], name=TTL_INDEX, expireAfterSeconds=seconds
            )

    async def record(
        self,
        action: AuditAction,
        actor: str,
        source: str,
        org_id: str | None,
        target: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one record (logged instead when the database refuses it)."""
        entry = AuditRecord(
            id=new_id("aud"),
            org_id=org_id,
            at=utcnow(),
            action=action,
            actor=actor,
            source=source,
            target=target,
            details=details or {},
        )
        try:
            await self.collection.insert_one(to_doc(entry))
        except PyMongoError as exc:
            _LOGGER.warning(
                "audit record not stored: %s",
                exc,
                extra={"audit": entry.model_dump(mode="json", by_alias=True)},
            )
        return entry

    async def find(
        self, where: AuditFilter, offset: int = 0, limit: int = 50
    ) -> tuple[list[AuditRecord], int]:
        """A page of matching records, newest first, and how many match in all."""
        query = where.query()
        cursor = self.collection.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)])
        docs = [doc async for doc in cursor.skip(offset).limit(limit)]
        total = await self.collection.count_documents(query)
        return [from_doc(AuditRecord, doc) for doc in docs], total
