"""Flow documents in MongoDB, written with compare-and-swap on `revision`."""

from __future__ import annotations

from dataclasses import dataclass

import bson
from bson.raw_bson import RawBSONDocument
from pymongo import DESCENDING

from flowboard.canvas.cache import StoredFlow
from flowboard.canvas.model import Flow
from flowboard.canvas.write import FlowWrite, encode
from flowboard.db.database import Database, Document
from flowboard.db.documents import from_doc, to_doc


def _from_doc(doc: Document) -> Flow:
    return from_doc(Flow, doc)


@dataclass(frozen=True)
class FlowPage:
    items: list[Flow]
    total: int


@dataclass
class FlowStore:
    """Reads and writes flows of one database."""

    database: Database

    @staticmethod
    def encode(flow: Flow) -> RawBSONDocument:
        """The flow's stored document, encoded once: its size is what the limit counts."""
        return encode(flow)

    @staticmethod
    def size(flow: Flow) -> int:
        return len(encode(flow).raw)

    async def insert(self, flow: Flow | RawBSONDocument) -> None:
        doc = flow if isinstance(flow, RawBSONDocument) else to_doc(flow)
        await self.database.flows.insert_one(doc)

    async def get(self, org_id: str, flow_id: str) -> Flow | None:
        doc = await self.database.batched("flows").get_in_org(flow_id, org_id)
        return None if doc is None else _from_doc(doc)

    async def get_stored(self, org_id: str, flow_id: str) -> StoredFlow | None:
        """The flow and the byte size of its stored document (an edit's starting point)."""
        doc = await self.database.batched("flows").get_in_org(flow_id, org_id)
        return None if doc is None else StoredFlow(_from_doc(doc), len(bson.encode(doc)))

    async def list(self, org_id: str, offset: int, limit: int) -> FlowPage:
        query = {"orgId": org_id}
        cursor = (
            self.database.flows.find(query)
            .sort([("updatedAt", DESCENDING), ("_id", DESCENDING)])
            .skip(offset)
            .limit(limit)
        )
        items = [_from_doc(doc) async for doc in cursor]
        total = await self.database.flows.count_documents(query)
        return FlowPage(items, total)

    async def write_if_revision(self, flow: Flow, write: FlowWrite, expected_revision: int) -> bool:
        """Apply `write` (the whole document, or the fields it sets) only if the stored
        revision is still `expected_revision`; False when it is not (or the flow is gone)."""
        query = {"_id": flow.id, "orgId": flow.org_id, "revision": expected_revision}
        if write.document is not None:
            result = await self.database.flows.replace_one(query, write.document)
        else:
            result = await self.database.flows.update_one(query, {"$set": write.fields})
        return result.matched_count == 1

    async def delete(self, org_id: str, flow_id: str) -> bool:
        result = await self.database.flows.delete_one({"_id": flow_id, "orgId": org_id})
        return result.deleted_count == 1
