"""Flow documents in MongoDB, written with compare-and-swap on `revision`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import DESCENDING, ReturnDocument

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

    async def insert(self, flow: Flow) -> None:
        await self.database.flows.insert_one(to_doc(flow))

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

    async def replace_if_revision(self, flow: Flow, expected_revision: int) -> Flow | None:
        """Store `flow` only if the stored revision is still `expected_revision`."""
        doc = to_doc(flow)
        fields: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("_id", "createdAt")}
        stored = await self.database.flows.find_one_and_update(
            {"_id": flow.id, "orgId": flow.org_id, "revision": expected_revision},
            {"$set": fields},
            return_document=ReturnDocument.AFTER,
        )
        return None if stored is None else _from_doc(stored)

    async def delete(self, org_id: str, flow_id: str) -> bool:
        result = await self.database.flows.delete_one({"_id": flow_id, "orgId": org_id})
        return result.deleted_count == 1
