"""Execution documents, written with compare-and-swap on `version`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from flowboard.db.database import Database
from flowboard.db.documents import from_doc, to_doc
from flowboard.models.execution import ACTIVE, Execution

_UNFINISHED = {"status": {"$in": [s.value for s in ACTIVE]}}


@dataclass
class ExecutionStore:
    database: Database

    async def insert(self, execution: Execution) -> Execution | None:
        """Insert; on a duplicate clientRequestId return None (the caller looks it up)."""
        try:
            await self.database.batched("executions").insert(to_doc(execution))
        except DuplicateKeyError:
            return None
        return execution

    async def get(self, org_id: str, execution_id: str) -> Execution | None:
        doc = await self.database.batched("executions").get_in_org(execution_id, org_id)
        return None if doc is None else from_doc(Execution, doc)

    async def get_any(self, execution_id: str) -> Execution | None:
        """Look up by id alone: for the engine's internal bookkeeping only."""
        doc = await self.database.batched("executions").get(execution_id)
        return None if doc is None else from_doc(Execution, doc)

    async def release_client_request(self, org_id: str, client_request_id: str) -> None:
        """Free an expired clientRequestId so that a new run may take it."""
        await self.database.executions.update_many(
            {"orgId": org_id, "clientRequestId": client_request_id},
            {"$unset": {"clientRequestId": ""}},
        )

    async def by_client_request(
        self, org_id: str, client_request_id: str, since: datetime
    ) -> Execution | None:
        doc = await self.database.executions.find_one(
            {"orgId": org_id, "clientRequestId": client_request_id}
        )
        if doc is not None and doc["createdAt"] < since:
            await self.release_client_request(org_id, client_request_id)
            return None
        return None if doc is None else from_doc(Execution, doc)

    async def list_for_flow(
        self, org_id: str, flow_id: str, offset: int, limit: int
    ) -> tuple[list[Execution], int]:
        query = {"orgId": org_id, "flowId": flow_id}
        cursor = (
            self.database.executions.find(query)
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(offset)
            .limit(limit)
        )
        items = [from_doc(Execution, d) async for d in cursor]
        return items, await self.database.executions.count_documents(query)

    async def replace_if_version(self, execution: Execution, expected: int) -> bool:
        if execution.version != expected + 1:
            raise ValueError("a replaced execution's version is one more than the expected")
        return await self.database.batched("executions").replace_if_version(
            to_doc(execution), "version"
        )

    async def active_ids(self) -> list[str]:
        """Ids of every execution not yet finished: the reaper's list, cheap to read."""
        cursor = self.database.executions.find(_UNFINISHED, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def active(self) -> list[Execution]:
        """Every execution not yet finished, across organisations (for resume at start-up)."""
        cursor = self.database.executions.find(_UNFINISHED)
        return [from_doc(Execution, d) async for d in cursor]
