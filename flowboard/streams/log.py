"""The shared event log of a cluster: every flow's stream events, numbered in the database.

One document per event, `_id` = `<flowId>/<seq>`: the unique `_id` is what makes a
sequence number taken once, cluster-wide. A writer inserts `seq + 1` only after it saw
`seq` stored (its own write, the change stream, or a read of the head), so a flow's
events enter the oplog in sequence order and every change stream sees them in order.
When a flow's whole log has aged out, its next event starts a new epoch at 1: ids of the
old epoch then mean "send a snapshot", never a wrong replay.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from flowboard.db.database import Database
from flowboard.streams.hub import StreamEvent, StreamEventType

COLLECTION = "stream_events"


@dataclass(frozen=True)
class Head:
    """Where a flow's log stands: its epoch and last sequence number (0: nothing yet)."""

    epoch: str
    seq: int

    def next(self) -> Head:
        return Head(self.epoch, self.seq + 1)


def new_head() -> Head:
    return Head(secrets.token_hex(4), 0)


@dataclass(frozen=True)
class LoggedEvent:
    """One stored event; `resync` marks a place where events were given up (a snapshot)."""

    flow_id: str
    head: Head
    event: StreamEventType
    data: str
    resync: bool = False

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> LoggedEvent:
        return cls(
            doc["flowId"],
            Head(doc["epoch"], doc["seq"]),
            StreamEventType(doc["event"]),
            doc["data"],
            bool(doc.get("resync")),
        )

    def document(self) -> dict[str, Any]:
        return {
            "_id": f"{self.flow_id}/{self.head.seq:012d}",
            "flowId": self.flow_id,
            "epoch": self.head.epoch,
            "seq": self.head.seq,
            "event": self.event.value,
            "data": self.data,
            "resync": self.resync,
            "at": datetime.now(UTC),
        }

    def stream_event(self) -> StreamEvent:
        head = self.head
        return StreamEvent.build(head.seq, f"{head.epoch}.{head.seq}", self.event, self.data)


@dataclass
class EventLog:
    """Reads and writes of the shared log."""

    collection: AsyncCollection[dict[str, Any]]

    @classmethod
    def of(cls, database: Database) -> EventLog:
        return cls(database.db[COLLECTION])

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("flowId", ASCENDING), ("seq", DESCENDING)])
        await self.collection.create_index([("at", ASCENDING)])

    async def head(self, flow_id: str) -> Head | None:
        """The flow's last stored event's place, None when its log is empty."""
        doc = await self.collection.find_one(
            {"flowId": flow_id}, {"epoch": 1, "seq": 1}, sort=[("seq", DESCENDING)]
        )
        return None if doc is None else Head(doc["epoch"], doc["seq"])

    async def insert(self, event: LoggedEvent) -> None:
        """Store the event; DuplicateKeyError when its number is taken."""
        await self.collection.insert_one(event.document())

    async def between(self, flow_id: str, epoch: str, after: int, upto: int) -> list[LoggedEvent]:
        """The flow's stored events of `epoch` numbered after `after`, up to `upto`."""
        cursor = self.collection.find(
            {"flowId": flow_id, "epoch": epoch, "seq": {"$gt": after, "$lte": upto}},
            sort=[("seq", ASCENDING)],
        )
        return [LoggedEvent.from_document(doc) async for doc in cursor]

    async def prune(self, older_than: float) -> int:
        """Delete events older than `older_than` seconds; return how many."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        result = await self.collection.delete_many({"at": {"$lt": cutoff}})
        return result.deleted_count
