"""Flow documents in MongoDB: a head and its parts (`canvas/write.py`), written with
compare-and-swap on the head's `revision`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bson
from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern

from flowboard.canvas.cache import StoredFlow
from flowboard.canvas.model import Flow
from flowboard.canvas.write import FlowWrite, PartRef, part_refs, size_of
from flowboard.db.database import Database, Document
from flowboard.db.documents import from_doc

_LOGGER = logging.getLogger(__name__)
# A reader whose head named a part a writer dropped meanwhile reads the head again.
_READ_ATTEMPTS = 5


class PartMissing(LookupError):
    """A head names a part that is gone (dropped by a writer since the head was read)."""


def _assemble(head: Document, refs: tuple[PartRef, ...], found: dict[str, Document]) -> Flow:
    data: dict[str, Any] = {k: v for k, v in head.items() if k != "parts"}
    data["nodes"], data["edges"] = [], []
    for ref in refs:
        part = found.get(ref.id)
        if part is None:
            raise PartMissing(ref.id)
        data[ref.kind].extend(part["items"])
    return from_doc(Flow, data)


@dataclass(frozen=True)
class FlowPage:
    items: list[Flow]
    total: int


@dataclass
class FlowStore:
    """Reads and writes flows of one database."""

    database: Database

    @staticmethod
    def size(flow: Flow) -> int:
        """Bytes the flow's documents take (what `canvas.max_flow_bytes` counts)."""
        return size_of(flow)

    async def insert(self, write: FlowWrite) -> None:
        """Store a new flow: its parts, then its head (DuplicateKeyError if the id is taken)."""
        if write.new_parts:
            await self.database.flow_parts.insert_many(write.new_parts)
        try:
            await self.database.flows.insert_one(write.head)
        except DuplicateKeyError:
            await self._delete_parts(write.new_part_ids)
            raise

    async def get(self, org_id: str, flow_id: str) -> Flow | None:
        stored = await self.get_stored(org_id, flow_id)
        return None if stored is None else stored.flow

    async def get_stored(self, org_id: str, flow_id: str) -> StoredFlow | None:
        """The flow with its parts and size (an edit's starting point)."""
        for _ in range(_READ_ATTEMPTS):
            head = await self.database.batched("flows").get_in_org(flow_id, org_id)
            if head is None:
                return None
            refs = part_refs(head)
            if refs is None:  # an older version's document: everything inline
                return StoredFlow(from_doc(Flow, head), None, len(bson.encode(head)))
            try:
                flow = _assemble(head, refs, await self._parts([p.id for p in refs]))
            except PartMissing:
                continue
            size = len(bson.encode(head)) + sum(p.bytes for p in refs)
            return StoredFlow(flow, refs, size)
        raise PartMissing(f"flow {flow_id}: parts kept changing while read")

    async def _parts(self, ids: Sequence[str]) -> dict[str, Document]:
        if not ids:
            return {}
        cursor = self.database.flow_parts.find({"_id": {"$in": ids}})
        return {str(d["_id"]): d async for d in cursor}

    async def list(self, org_id: str, offset: int, limit: int) -> FlowPage:
        query = {"orgId": org_id}
        cursor = (
            self.database.flows.find(query)
            .sort([("updatedAt", DESCENDING), ("_id", DESCENDING)])
            .skip(offset)
            .limit(limit)
        )
        heads = [doc async for doc in cursor]
        ids = [p.id for head in heads for p in part_refs(head) or ()]
        found = await self._parts(ids)
        items: list[Flow] = []
        for head in heads:
            refs = part_refs(head)
            try:
                items.append(from_doc(Flow, head) if refs is None else _assemble(head, refs, found))
            except PartMissing:  # written meanwhile: read it whole again
                again = await self.get(org_id, str(head["_id"]))
                if again is not None:
                    items.append(again)
        total = await self.database.flows.count_documents(query)
        return FlowPage(items, total)

    async def write_if_revision(self, flow: Flow, write: FlowWrite, expected_revision: int) -> bool:
        """Store `write` only if the stored revision is still `expected_revision`; False
        when it is not (or the flow is gone), leaving nothing of it behind."""
        if write.new_parts:
            await self.database.flow_parts.insert_many(write.new_parts)
        result = await self.database.flows.replace_one(
            {"_id": flow.id, "orgId": flow.org_id, "revision": expected_revision}, write.head
        )
        if result.matched_count == 1:
            await self._forget_parts(flow.id, write.dropped)
            return True
        await self._delete_parts(write.new_part_ids)
        return False

    async def delete(self, org_id: str, flow_id: str) -> bool:
        head = await self.database.flows.find_one_and_delete({"_id": flow_id, "orgId": org_id})
        if head is None:
            return False
        await self._delete_parts([p.id for p in part_refs(head) or ()])
        return True

    async def _forget_parts(self, flow_id: str, ids: Sequence[str]) -> None:
        """Delete parts no head names any more, without waiting for the answer (w=0).

        The edit is stored already; a part left behind (the database went away) is
        garbage nobody reads, not a fault of the edit.
        """
        if not ids:
            return
        parts = self.database.flow_parts.with_options(write_concern=WriteConcern(w=0))
        try:
            await parts.delete_many({"_id": {"$in": list(ids)}})
        except PyMongoError as exc:
            _LOGGER.info("replaced parts left behind: %s", exc, extra={"flow_id": flow_id})

    async def _delete_parts(self, ids: Sequence[str]) -> None:
        if ids:
            await self.database.flow_parts.delete_many({"_id": {"$in": ids}})
