"""Webhook subscriptions for the API, and the parts the app wires together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from flowboard.config import Settings
from flowboard.db.database import Database
from flowboard.ids import new_id, utcnow
from flowboard.models.webhooks import Delivery, Subscription, WebhookEvent
from flowboard.net.ssrf import AllowList, Resolve, check_url
from flowboard.store.webhooks import WebhookStore
from flowboard.webhooks import signing
from flowboard.webhooks.delivery import DeliveryWorker
from flowboard.webhooks.inbound import InboundWebhooks
from flowboard.webhooks.outbox import WebhookOutbox

_LOGGER = logging.getLogger(__name__)


@dataclass
class WebhookService:
    """Create, read and delete subscriptions; holds the outbox, worker and inbound side.

    outbox: the bus listener that queues deliveries (registered by the engine context).
    """

    store: WebhookStore
    allow: AllowList
    worker: DeliveryWorker
    outbox: WebhookOutbox
    inbound: InboundWebhooks
    resolve: Resolve | None = None

    async def create(
        self,
        org_id: str,
        url: str,
        events: list[WebhookEvent],
        flow_id: str | None,
        secret: str | None,
    ) -> Subscription:
        """Store a subscription whose URL passed the SSRF guard (UnsafeUrl otherwise)."""
        vetted = await check_url(url, self.allow, self.resolve)
        now = utcnow()
        subscription = Subscription(
            id=new_id("wh"),
            org_id=org_id,
            flow_id=flow_id,
            url=str(vetted.url),
            events=list(dict.fromkeys(events)),
            secret=secret or signing.generate_secret(),
            created_at=now,
            updated_at=now,
        )
        await self.store.insert_subscription(subscription)
        _LOGGER.info(
            "webhook subscription created",
            extra={"webhook_id": subscription.id, "org_id": org_id, "flow_id": flow_id},
        )
        return subscription

    async def get(self, org_id: str, subscription_id: str) -> Subscription | None:
        return await self.store.subscription(org_id, subscription_id)

    async def subscriptions(
        self, org_id: str, offset: int, limit: int
    ) -> tuple[list[Subscription], int]:
        return await self.store.list_subscriptions(org_id, offset, limit)

    async def delete(self, org_id: str, subscription_id: str) -> bool:
        deleted = await self.store.delete_subscription(org_id, subscription_id)
        if deleted:
            _LOGGER.info(
                "webhook subscription deleted",
                extra={"webhook_id": subscription_id, "org_id": org_id},
            )
        return deleted

    async def deliveries(
        self, org_id: str, subscription_id: str, offset: int, limit: int
    ) -> tuple[list[Delivery], int] | None:
        """A subscription's deliveries, newest first; None when it is not the org's."""
        if await self.store.subscription(org_id, subscription_id) is None:
            return None
        return await self.store.list_deliveries(subscription_id, offset, limit)


@asynccontextmanager
async def open_webhooks(settings: Settings, database: Database) -> AsyncIterator[WebhookService]:
    """The webhook side of the service, its delivery worker running while the block runs."""
    store = WebhookStore(database)
    await store.ensure_indexes()
    allow = AllowList.parse(settings.network.allow)
    worker = DeliveryWorker(store, settings.webhooks, allow)
    service = WebhookService(
        store,
        allow,
        worker,
        WebhookOutbox(store, worker.wake),
        InboundWebhooks(store, settings.webhooks.inbound),
    )
    worker.start()
    try:
        yield service
    finally:
        await worker.stop(settings.server.shutdown_grace_seconds)
