"""Webhook routes: subscriptions and their delivery log; inbound provider reports."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import Field, field_validator

from flowboard.api.audit import audit
from flowboard.api.bodies import json_answer, query_int, read_model
from flowboard.api.endpoint import Endpoint, Param
from flowboard.api.errors import ApiError
from flowboard.api.flows import PREFIX
from flowboard.api.principal import org_id
from flowboard.audit.model import AuditAction
from flowboard.ids import Id
from flowboard.keys import ASSETS, BUS, CANVAS, ENGINE, WEBHOOKS
from flowboard.models.webhooks import DeliveryInfo, Subscription, SubscriptionInfo, WebhookEvent
from flowboard.net.ssrf import FetchFailed
from flowboard.safe_url import EndpointUrl
from flowboard.schema import ApiModel
from flowboard.webhooks import signing
from flowboard.webhooks.inbound import AssetReport, InboundAck, UnknownAsset
from flowboard.webhooks.signing import InvalidSignature

_LOGGER = logging.getLogger(__name__)

WEBHOOK_ID = Param("webhookId", "path", required=True)
PAGE = (
    Param("offset", "query", schema_type="integer"),
    Param("limit", "query", schema_type="integer"),
)


class WebhookCreate(ApiModel):
    """A new subscription; without `secret` one is generated (and returned once)."""

    url: EndpointUrl = Field(min_length=1, max_length=2048)
    events: list[WebhookEvent] = Field(default_factory=lambda: list(WebhookEvent), min_length=1)
    flow_id: Id | None = None
    secret: str | None = Field(default=None, max_length=200)

    @field_validator("secret")
    @classmethod
    def _secret_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        size = len(signing.secret_bytes(value))
        if not signing.MIN_SECRET_BYTES <= size <= signing.MAX_SECRET_BYTES:
            low, high = signing.MIN_SECRET_BYTES, signing.MAX_SECRET_BYTES
            raise ValueError(f"secret must hold {low} to {high} bytes")
        return value


class SubscriptionList(ApiModel):
    items: list[SubscriptionInfo]
    total: int
    offset: int
    limit: int


class DeliveryList(ApiModel):
    items: list[DeliveryInfo]
    total: int
    offset: int
    limit: int


def _info(subscription: Subscription) -> SubscriptionInfo:
    return SubscriptionInfo.model_validate(subscription.model_dump(exclude={"secret"}))


def _not_found(webhook_id: str) -> ApiError:
    return ApiError(404, "webhook_not_found", f"webhook {webhook_id!r} not found")


async def create_webhook(request: web.Request) -> web.Response:
    body = await read_model(request, WebhookCreate)
    org = org_id(request)
    if body.flow_id is not None:
        await request.app[CANVAS].get(org, body.flow_id)  # 404 for another org's flow
    try:
        subscription = await request.app[WEBHOOKS].create(
            org, body.url, body.events, body.flow_id, body.secret
        )
    except FetchFailed as exc:  # UnsafeUrl is mapped to 422 by the error middleware
        raise ApiError(422, "unresolvable_url", str(exc)) from exc
    details = {"url": subscription.url, "events": [e.value for e in subscription.events]}
    await audit(request, AuditAction.WEBHOOK_CREATED, subscription.id, details)
    return json_answer(subscription, 201)  # the only answer that shows the secret


async def list_webhooks(request: web.Request) -> web.Response:
    offset = query_int(request, "offset", 0, 0, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 200)
    items, total = await request.app[WEBHOOKS].subscriptions(org_id(request), offset, limit)
    return json_answer(
        SubscriptionList(items=[_info(s) for s in items], total=total, offset=offset, limit=limit)
    )


async def get_webhook(request: web.Request) -> web.Response:
    webhook_id = request.match_info["webhookId"]
    subscription = await request.app[WEBHOOKS].get(org_id(request), webhook_id)
    if subscription is None:
        raise _not_found(webhook_id)
    return json_answer(_info(subscription))


async def delete_webhook(request: web.Request) -> web.Response:
    webhook_id = request.match_info["webhookId"]
    if not await request.app[WEBHOOKS].delete(org_id(request), webhook_id):
        raise _not_found(webhook_id)
    await audit(request, AuditAction.WEBHOOK_DELETED, webhook_id)
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    webhook_id = request.match_info["webhookId"]
    offset = query_int(request, "offset", 0, 0, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 200)
    found = await request.app[WEBHOOKS].deliveries(org_id(request), webhook_id, offset, limit)
    if found is None:
        raise _not_found(webhook_id)
    items = [DeliveryInfo.model_validate(d.model_dump(exclude={"body"})) for d in found[0]]
    return json_answer(DeliveryList(items=items, total=found[1], offset=offset, limit=limit))


async def receive_webhook(request: web.Request) -> web.Response:
    """An external provider's signed report on an asset (no bearer token: the signature)."""
    provider = request.match_info["provider"]
    body = await request.read()
    app = request.app
    try:
        ack = await app[WEBHOOKS].inbound.receive(
            provider, request.headers, body, app[ASSETS], app[BUS], app[ENGINE]
        )
    except InvalidSignature as exc:
        _LOGGER.info("inbound webhook refused: %s", exc, extra={"provider": provider})
        raise ApiError(401, "invalid_signature", f"webhook not accepted: {exc}") from exc
    except UnknownAsset as exc:
        raise ApiError(404, "asset_not_found", f"asset {exc.args[0]!r} not found") from exc
    return json_answer(ack)


def endpoints() -> list[Endpoint]:
    tag = "webhooks"
    webhooks, webhook = f"{PREFIX}/webhooks", f"{PREFIX}/webhooks/{{webhookId}}"
    return [
        Endpoint(
            "POST",
            webhooks,
            create_webhook,
            "Subscribe a URL to events (the URL must pass the SSRF guard)",
            tag,
            WebhookCreate,
            Subscription,
            201,
        ),
        Endpoint(
            "GET",
            webhooks,
            list_webhooks,
            "List webhook subscriptions",
            tag,
            None,
            SubscriptionList,
            params=PAGE,
        ),
        Endpoint(
            "GET",
            webhook,
            get_webhook,
            "Get a webhook subscription",
            tag,
            None,
            SubscriptionInfo,
            params=(WEBHOOK_ID,),
        ),
        Endpoint(
            "DELETE",
            webhook,
            delete_webhook,
            "Delete a webhook subscription and its deliveries",
            tag,
            status=204,
            params=(WEBHOOK_ID,),
        ),
        Endpoint(
            "GET",
            f"{webhook}/deliveries",
            list_deliveries,
            "A subscription's deliveries, newest first, with every attempt",
            tag,
            None,
            DeliveryList,
            params=(WEBHOOK_ID, *PAGE),
        ),
        Endpoint(
            "POST",
            "/api/webhooks/{provider}",
            receive_webhook,
            "An external provider reports an asset's progress or end (Standard Webhooks)",
            tag,
            AssetReport,
            InboundAck,
            params=(Param("provider", "path", required=True),),
            # authenticated by the provider's signature, not by a bearer token
            public=True,
        ),
    ]
