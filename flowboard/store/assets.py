"""GeneratedAsset documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import DESCENDING, ReturnDocument, WriteConcern

from flowboard.assets.model import JOB_STATE_FIELDS, AssetStatus, GeneratedAsset
from flowboard.db.database import Database
from flowboard.db.documents import from_doc, to_doc
from flowboard.ids import utcnow
from flowboard.models.execution import sources

_UNFINISHED = [AssetStatus.PENDING.value, AssetStatus.PROCESSING.value]
_JOURNALED = WriteConcern(j=True)


@dataclass
class AssetStore:
    database: Database

    async def insert(self, asset: GeneratedAsset) -> None:
        doc = to_doc(asset)
        for name in JOB_STATE_FIELDS:  # the task's, not the asset's
            doc.pop(name, None)
        await self.database.batched("assets").insert(doc)

    async def get(self, org_id: str, asset_id: str) -> GeneratedAsset | None:
        doc = await self.database.batched("assets").get_in_org(asset_id, org_id)
        return None if doc is None else from_doc(GeneratedAsset, doc)

    async def get_any(self, asset_id: str) -> GeneratedAsset | None:
        """Look up by id alone: for internal resume and provider callbacks only."""
        doc = await self.database.batched("assets").get(asset_id)
        return None if doc is None else from_doc(GeneratedAsset, doc)

    async def set_fields(self, asset_id: str, fields: dict[str, Any]) -> None:
        """Set fields of an asset not yet terminal, without reading it back (batched).

        For the running job's own writes: it holds the asset, and nobody else ends it
        while the job runs, so it need not learn whether the write matched.
        """
        query = {"_id": asset_id, "status": {"$in": _UNFINISHED}}
        update = {"$set": {**fields, "updatedAt": utcnow()}}
        await self.database.batched("assets").update(query, update)

    async def record_operation(self, asset_id: str, operation_id: str) -> None:
        """Store the provider's operation id, journaled, before the job does anything else.

        A restart follows the job from it; a database killed in its flush window must not
        forget it, or the resumed job would start (and pay for) a second generation.
        """
        query = {"_id": asset_id, "status": {"$in": _UNFINISHED}}
        update = {"$set": {"operationId": operation_id, "updatedAt": utcnow()}}
        await self.database.assets.with_options(write_concern=_JOURNALED).update_one(query, update)

    async def finish(
        self, asset_id: str, status: AssetStatus, fields: dict[str, Any]
    ) -> GeneratedAsset | None:
        """Record how the asset's job ended (with its output or error); None if refused.

        The write matches only an asset whose status may move to `status` by the task
        transition table, so an ended asset is never ended again. It is journaled
        (j: the log is flushed before the answer, with every write before it): the task
        moves on once this returns, and a database killed right after must not forget the
        end of a job whose task it has already recorded as ended (a generation paid for).
        """
        query = {"_id": asset_id, "status": {"$in": [s.value for s in sources(status)]}}
        update = {"$set": {**fields, "status": status.value, "updatedAt": utcnow()}}
        assets = self.database.assets.with_options(write_concern=_JOURNALED)
        doc = await assets.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        return None if doc is None else from_doc(GeneratedAsset, doc)

    async def count_for_node(self, execution_id: str, node_id: str) -> int:
        return await self.database.assets.count_documents(
            {"executionId": execution_id, "nodeId": node_id}
        )

    async def latest_completed(
        self, org_id: str, flow_id: str, node_id: str
    ) -> GeneratedAsset | None:
        """The newest finished output of a node (the input of nodes downstream of it)."""
        doc = await self.database.assets.find_one(
            _takes_query(org_id, flow_id, node_id), sort=_NEWEST_FIRST
        )
        return None if doc is None else from_doc(GeneratedAsset, doc)

    async def takes(
        self, org_id: str, flow_id: str, node_id: str, offset: int, limit: int
    ) -> tuple[list[GeneratedAsset], int]:
        """A node's finished outputs, newest first (its output node shows the first)."""
        query = _takes_query(org_id, flow_id, node_id)
        cursor = self.database.assets.find(query).sort(_NEWEST_FIRST).skip(offset).limit(limit)
        items = [from_doc(GeneratedAsset, d) async for d in cursor]
        return items, await self.database.assets.count_documents(query)


# Served by the assets index on (orgId, flowId, nodeId, status, updatedAt desc).
_NEWEST_FIRST = [("updatedAt", DESCENDING), ("_id", DESCENDING)]


def _takes_query(org_id: str, flow_id: str, node_id: str) -> dict[str, Any]:
    return {
        "orgId": org_id,
        "flowId": flow_id,
        "nodeId": node_id,
        "status": AssetStatus.COMPLETED.value,
    }
