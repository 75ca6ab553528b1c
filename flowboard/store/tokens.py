"""API token documents: looked up by the hash of the token, never by its plain text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING

from flowboard.db.database import Database
from flowboard.db.documents import from_doc, to_doc
from flowboard.models.tokens import ApiToken


@dataclass
class TokenStore:
    """Reads and writes the `tokens` collection."""

    database: Database

    async def insert(self, token: ApiToken) -> None:
        await self.database.tokens.insert_one(to_doc(token))

    async def by_hash(self, digest: str) -> ApiToken | None:
        doc = await self.database.tokens.find_one({"hash": digest})
        return None if doc is None else from_doc(ApiToken, doc)

    async def list(self, org_id: str | None = None) -> list[ApiToken]:
        """Every token (of one organisation, when given), oldest first."""
        query: dict[str, Any] = {} if org_id is None else {"orgId": org_id}
        order = [("createdAt", ASCENDING), ("_id", ASCENDING)]
        cursor = self.database.tokens.find(query).sort(order)
        return [from_doc(ApiToken, doc) async for doc in cursor]

    async def revoke(self, token_id: str, when: datetime) -> ApiToken | None:
        """Mark revoked (keeping the first revocation time); None when there is no such token."""
        await self.database.tokens.update_one(
            {"_id": token_id, "revokedAt": None}, {"$set": {"revokedAt": when}}
        )
        doc = await self.database.tokens.find_one({"_id": token_id})
        return None if doc is None else from_doc(ApiToken, doc)

    async def touch(self, token_id: str, when: datetime) -> None:
        await self.database.tokens.update_one({"_id": token_id}, {"$set": {"lastUsedAt": when}})
