"""Webhook subscriptions and outbox deliveries, as stored and as shown by the API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from flowboard.schema import ApiModel


class WebhookEvent(StrEnum):
    """The events a subscription can ask for."""

    EXECUTION_COMPLETED = "execution.completed"
    EXECUTION_FAILED = "execution.failed"
    EXECUTION_CANCELLED = "execution.cancelled"
    ASSET_COMPLETED = "asset.completed"


# A terminal execution status and the event it is announced as.
EXECUTION_EVENTS: dict[str, WebhookEvent] = {
    "COMPLETED": WebhookEvent.EXECUTION_COMPLETED,
    "FAILED": WebhookEvent.EXECUTION_FAILED,
    "CANCELLED": WebhookEvent.EXECUTION_CANCELLED,
}


class SubscriptionInfo(ApiModel):
    """A webhook subscription as shown after creation (never with its secret).

    flow_id: only events of this flow; None = every flow of the organisation.
    enabled: false once the endpoint answered 410 Gone (see disabled_reason).
    """

    id: str
    org_id: str
    flow_id: str | None = None
    url: str
    events: list[WebhookEvent]
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class Subscription(SubscriptionInfo):
    """The stored subscription; `secret` (whsec_...) signs its deliveries.

    The API returns it with the secret once, in the answer to its creation.
    """

    secret: str


class DeliveryStatus(StrEnum):
    """PENDING until delivered, given up, or cancelled with its subscription."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Attempt(ApiModel):
    """One try to deliver: the endpoint's status code, or why no answer came."""

    at: datetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = Field(default=0, ge=0)


class DeliveryInfo(ApiModel):
    """One event for one subscription, in the outbox (written before it is sent).

    event_id: the source event (unique per subscription, so a re-published event
        is not queued twice).
    message_id: the `webhook-id` header; the same on every attempt and for every
        subscription, so receivers can drop duplicates.
    next_attempt_at: when the worker sends it next; survives restarts.
    outcome: a sentence on how it ended (empty while PENDING).
    """

    id: str
    subscription_id: str
    org_id: str
    event_id: str
    event_type: WebhookEvent
    message_id: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: list[Attempt] = Field(default_factory=list)
    next_attempt_at: datetime | None = None
    outcome: str = ""
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class Delivery(DeliveryInfo):
    """The stored delivery with its body, serialised once so every attempt signs the same bytes."""

    body: str
