"""Every endpoint of the service, registered on the app in one place."""

from __future__ import annotations

from aiohttp import web

from flowboard.api import (
    assets,
    audit,
    budgets,
    canvas_page,
    executions,
    flow_transfer,
    flows,
    health,
    metrics,
    subscribe,
    usage,
    webhooks,
)
from flowboard.api.endpoint import Endpoint
from flowboard.api.openapi import OPENAPI_DOCUMENT, OPENAPI_ENDPOINT, build_openapi


def all_endpoints() -> list[Endpoint]:
    return [
        *health.endpoints(),
        *metrics.endpoints(),
        *flows.endpoints(),
        *flow_transfer.endpoints(),
        *subscribe.endpoints(),
        *executions.endpoints(),
        *budgets.endpoints(),
        *assets.endpoints(),
        *webhooks.endpoints(),
        *audit.endpoints(),
        *usage.endpoints(),
    ]


def setup_routes(app: web.Application) -> list[Endpoint]:
    endpoints = [*all_endpoints(), OPENAPI_ENDPOINT]
    app[OPENAPI_DOCUMENT] = build_openapi(endpoints)
    # the canvas page (GET /, /web/*) is public and not part of the API document
    endpoints += canvas_page.endpoints()
    app.router.add_routes([ep.route() for ep in endpoints])
    return endpoints
