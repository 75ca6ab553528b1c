"""Flow documents in MongoDB, written with compare-and-swap on `revision`."""

from __future__ import annotations

from dataclasses import dataclass

import bson
from bson.raw_bson import RawBSONDocument
from pymongo import DESCENDING

from flowboard.canvas.model import Flow
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
        return RawBSONDocument(bson.encode(to_doc(flow)))

    @staticmethod
    def size(flow: Flow) -> int:
        return len(FlowStore.encode(flow).raw)

    async def insert(self, flow: Flow | RawBSONDocument) -> None:
        doc = flow if isinstance(flow, RawBSONDocument) else to_doc(flow)
        await self.database.flows.insert_one(doc)

    async def get(self, org_id: str, flow_id: str) -> Flow | None:
        doc = await self.database.batched("flows").get_in_org(flow_id, org_id)
        return None if doc is None else _from_doc(doc)

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

    async def replace_if_revision(
        self, flow: Flow, document: RawBSONDocument, expected_revision: int
    ) -> bool:
        """Store `document` (the encoded `flow`) only if the stored revision is still
        `expected_revision`; False when it is not (or the flow is gone)."""
        result = await self.database.flows.replace_one(
            {"_id": flow.id, "orgId": flow.org_id, "revision": expected_revision}, document
        )
        return result.matched_count == 1

    async def delete(self, org_id: str, flow_id: str) -> bool:
        result = await self.database.flows.delete_one({"_id": flow_id, "orgId": org_id})
        return result.deleted_count == 1
