"""GET /metrics in the Prometheus text format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from flowboard.api.endpoint import Endpoint
from flowboard.keys import HUB, METRICS


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    registry.sse_subscribers.set(request.app[HUB].subscriber_count())
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET",
            "/metrics",
            metrics,
            "Prometheus counters",
            "health",
            content_type="text/plain",
            public=True,
            database=False,
        )
    ]
