"""Turn bus events into outbox deliveries, written before anything is sent."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowboard.assets.model import AssetStatus
from flowboard.events.bus import on
from flowboard.events.types import AssetUpdated, ExecutionUpdated
from flowboard.ids import new_id, utcnow
from flowboard.models.webhooks import EXECUTION_EVENTS, Delivery, Subscription, WebhookEvent
from flowboard.store.webhooks import WebhookStore

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One webhook event, the same for every subscription it goes to.

    event_id: stable across re-publications of the source event (an execution ends
        once; an asset completes once), so the outbox can refuse duplicates.
    """

    event_id: str
    type: WebhookEvent
    org_id: str
    flow_id: str
    data: dict[str, Any]

    @property
    def message_id(self) -> str:
        return "msg_" + hashlib.sha256(self.event_id.encode()).hexdigest()[:32]

    def body(self) -> str:
        envelope = {"type": self.type.value, "timestamp": utcnow().isoformat(), "data": self.data}
        return json.dumps(envelope, separators=(",", ":"), sort_keys=True)


def execution_message(event: ExecutionUpdated) -> Message | None:
    """The webhook event of an execution that reached a terminal status, else None."""
    kind = EXECUTION_EVENTS.get(event.status)
    if kind is None:
        return None
    return Message(
        event_id=f"execution:{event.execution_id}:end",
        type=kind,
        org_id=event.org_id,
        flow_id=event.flow_id,
        data=event.execution,
    )


def asset_message(event: AssetUpdated) -> Message | None:
    """The webhook event of an asset that completed, else None."""
    if event.status != AssetStatus.COMPLETED.value:
        return None
    data = {
        "assetId": event.asset_id,
        "orgId": event.org_id,
        "flowId": event.flow_id or None,
        "executionId": event.execution_id or None,
        "nodeId": event.node_id or None,
        "status": event.status,
        "url": event.url,
    }
    return Message(
        event_id=f"asset:{event.asset_id}:completed",
        type=WebhookEvent.ASSET_COMPLETED,
        org_id=event.org_id,
        flow_id=event.flow_id,
        data=data,
    )


@dataclass
class WebhookOutbox:
    """Bus listener: queue one delivery per matching subscription, then wake the worker.

    A failure to write propagates, so the bus retries it like any other handler.
    """

    store: WebhookStore
    wake: Callable[[], None]

    @on(ExecutionUpdated.EVENT)
    async def on_execution_updated(self, event: ExecutionUpdated) -> None:
        message = execution_message(event)
        if message is not None:
            await self.enqueue(message)

    @on(AssetUpdated.EVENT)
    async def on_asset_updated(self, event: AssetUpdated) -> None:
        message = asset_message(event)
        if message is not None:
            await self.enqueue(message)

    async def enqueue(self, message: Message) -> int:
        """Write the deliveries of a message; return how many were new."""
        subscriptions = await self.store.matching(
            message.org_id, message.flow_id, message.type.value
        )
        body = message.body()
        queued = 0
        for subscription in subscriptions:
            if await self.store.enqueue(_delivery(subscription, message, body)):
                queued += 1
        if queued:
            _LOGGER.info(
                "webhook deliveries queued",
                extra={"event": message.type.value, "event_id": message.event_id, "count": queued},
            )
            self.wake()
        return queued


def _delivery(subscription: Subscription, message: Message, body: str) -> Delivery:
    now = utcnow()
    return Delivery(
        id=new_id("dlv"),
        subscription_id=subscription.id,
        org_id=message.org_id,
        event_id=message.event_id,
        event_type=message.type,
        message_id=message.message_id,
        next_attempt_at=now,
        body=body,
        created_at=now,
        updated_at=now,
    )
