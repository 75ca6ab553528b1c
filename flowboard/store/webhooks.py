"""Webhook subscriptions, the delivery outbox, and inbound message ids already seen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from flowboard.db.database import Database, Document
from flowboard.db.documents import from_doc, to_doc
from flowboard.ids import utcnow
from flowboard.models.webhooks import Attempt, Delivery, DeliveryStatus, Subscription

SUBSCRIPTIONS = "webhook_subscriptions"
DELIVERIES = "webhook_deliveries"
INBOUND_SEEN = "webhook_inbound_seen"


@dataclass
class WebhookStore:
    """Reads and writes the three webhook collections."""

    database: Database

    @property
    def subscriptions(self) -> AsyncCollection[Document]:
        return self.database.db[SUBSCRIPTIONS]

    @property
    def deliveries(self) -> AsyncCollection[Document]:
        return self.database.db[DELIVERIES]

    @property
    def seen(self) -> AsyncCollection[Document]:
        return self.database.db[INBOUND_SEEN]

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries rely on (idempotent)."""
        await self.subscriptions.create_index([("orgId", ASCENDING), ("createdAt", ASCENDING)])
        await self.deliveries.create_index(
            [("subscriptionId", ASCENDING), ("eventId", ASCENDING)], unique=True
        )
        await self.deliveries.create_index([("status", ASCENDING), ("nextAttemptAt", ASCENDING)])
        await self.deliveries.create_index(
            [("subscriptionId", ASCENDING), ("createdAt", DESCENDING)]
        )
        await self.seen.create_index([("expiresAt", ASCENDING)], expireAfterSeconds=0)

    # -- subscriptions ---------------------------------------------------------------

    async def insert_subscription(self, subscription: Subscription) -> None:
        await self.subscriptions.insert_one(to_doc(subscription))

    async def subscription(self, org_id: str, subscription_id: str) -> Subscription | None:
        doc = await self.subscriptions.find_one({"_id": subscription_id, "orgId": org_id})
        return None if doc is None else from_doc(Subscription, doc)

    async def subscription_any(self, subscription_id: str) -> Subscription | None:
        """Look up by id alone: for the delivery worker only."""
        doc = await self.subscriptions.find_one({"_id": subscription_id})
        return None if doc is None else from_doc(Subscription, doc)

    async def list_subscriptions(
        self, org_id: str, offset: int, limit: int
    ) -> tuple[list[Subscription], int]:
        query = {"orgId": org_id}
        order = [("createdAt", ASCENDING), ("_id", ASCENDING)]
        cursor = self.subscriptions.find(query).sort(order).skip(offset).limit(limit)
        items = [from_doc(Subscription, doc) async for doc in cursor]
        return items, await self.subscriptions.count_documents(query)

    async def matching(self, org_id: str, flow_id: str, event: str) -> list[Subscription]:
        """Enabled subscriptions of the organisation that want this event of this flow."""
        cursor = self.subscriptions.find({"orgId": org_id, "enabled": True, "events": event})
        found = [from_doc(Subscription, doc) async for doc in cursor]
        return [s for s in found if s.flow_id is None or s.flow_id == flow_id]

    async def delete_subscription(self, org_id: str, subscription_id: str) -> bool:
        """Delete a subscription and its deliveries; False when there is no such one."""
        result = await self.subscriptions.delete_one({"_id": subscription_id, "orgId": org_id})
        if result.deleted_count != 1:
            return False
        await self.deliveries.delete_many({"subscriptionId": subscription_id})
        return True

    async def disable(self, subscription_id: str, reason: str, when: datetime) -> None:
        await self.subscriptions.update_one(
            {"_id": subscription_id, "enabled": True},
            {
                "$set": {
                    "enabled": False,
                    "disabledReason": reason,
                    "disabledAt": when,
                    "updatedAt": when,
                }
            },
        )

    # -- the outbox -------------------------------------------------------------------

    async def enqueue(self, delivery: Delivery) -> bool:
        """Write a delivery; False when this event is already queued for the subscription."""
        try:
            await self.deliveries.insert_one(to_doc(delivery))
        except DuplicateKeyError:
            return False
        return True

    async def claim_due(self, now: datetime, lease: timedelta) -> Delivery | None:
        """Take the most overdue delivery, pushing its next attempt past the lease.

        Should this process die while sending, the delivery is due again once the
        lease has passed (at-least-once delivery).
        """
        doc = await self.deliveries.find_one_and_update(
            {"status": DeliveryStatus.PENDING.value, "nextAttemptAt": {"$lte": now}},
            {"$set": {"nextAttemptAt": now + lease}},
            sort=[("nextAttemptAt", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else from_doc(Delivery, doc)

    async def release(self, delivery_id: str, when: datetime) -> None:
        """Make a claimed delivery due again (its attempt was interrupted)."""
        await self.deliveries.update_one(
            {"_id": delivery_id, "status": DeliveryStatus.PENDING.value},
            {"$set": {"nextAttemptAt": when}},
        )

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery is due."""
        doc = await self.deliveries.find_one(
            {"status": DeliveryStatus.PENDING.value},
            projection={"nextAttemptAt": 1},
            sort=[("nextAttemptAt", ASCENDING)],
        )
        return None if doc is None else doc.get("nextAttemptAt")

    async def record(self, delivery_id: str, attempt: Attempt, next_attempt_at: datetime) -> None:
        """Log a failed attempt and when the next one is due."""
        await self._update(
            delivery_id, attempt, {"nextAttemptAt": next_attempt_at, "updatedAt": attempt.at}
        )

    async def finish(
        self, delivery_id: str, status: DeliveryStatus, outcome: str, attempt: Attempt | None
    ) -> None:
        """End a delivery (with its last attempt, if one was made)."""
        when = attempt.at if attempt is not None else utcnow()
        fields = {
            "status": status.value,
            "outcome": outcome,
            "nextAttemptAt": None,
            "finishedAt": when,
            "updatedAt": when,
        }
        await self._update(delivery_id, attempt, fields)

    async def _update(
        self, delivery_id: str, attempt: Attempt | None, fields: dict[str, Any]
    ) -> None:
        update: dict[str, Any] = {"$set": fields}
        if attempt is not None:
            update["$push"] = {"attempts": attempt.model_dump(mode="python", by_alias=True)}
        await self.deliveries.update_one(
            {"_id": delivery_id, "status": DeliveryStatus.PENDING.value}, update
        )

    async def cancel_pending(self, subscription_id: str, outcome: str) -> int:
        now = utcnow()
        result = await self.deliveries.update_many(
            {"subscriptionId": subscription_id, "status": DeliveryStatus.PENDING.value},
            {
                "$set": {
                    "status": DeliveryStatus.CANCELLED.value,
                    "outcome": outcome,
                    "nextAttemptAt": None,
                    "finishedAt": now,
                    "updatedAt": now,
                }
            },
        )
        return result.modified_count

    async def list_deliveries(
        self, subscription_id: str, offset: int, limit: int
    ) -> tuple[list[Delivery], int]:
        query = {"subscriptionId": subscription_id}
        order = [("createdAt", DESCENDING), ("_id", DESCENDING)]
        cursor = self.deliveries.find(query).sort(order).skip(offset).limit(limit)
        items = [from_doc(Delivery, doc) async for doc in cursor]
        return items, await self.deliveries.count_documents(query)

    # -- inbound message ids -------------------------------------------------------------

    async def claim_message(self, key: str, expires_at: datetime) -> bool:
        """Remember an inbound message id; False when it was seen and has not expired.

        A TTL index removes expired ids; one not yet removed counts as unseen.
        """
        try:
            await self.seen.insert_one({"_id": key, "expiresAt": expires_at})
        except DuplicateKeyError:
            taken = await self.seen.update_one(
                {"_id": key, "expiresAt": {"$lte": utcnow()}}, {"$set": {"expiresAt": expires_at}}
            )
            return taken.modified_count == 1
        return True

    async def forget_message(self, key: str) -> None:
        """Let a message be processed again (its processing failed)."""
        await self.seen.delete_one({"_id": key})
