"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from flowboard.api.bodies import json_answer
from flowboard.api.endpoint import Endpoint
from flowboard.api.schemas import Health
from flowboard.keys import DATABASE, PROVIDERS


async def healthz(request: web.Request) -> web.Response:
    return json_answer(Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    ready, providers = await asyncio.gather(
        request.app[DATABASE].ping(), request.app[PROVIDERS].reachability()
    )
    health = Health(
        status="ok" if ready else "unavailable",
        database="up" if ready else "down",
        providers=providers,
    )
    return json_answer(health, 200 if ready else 503)


def endpoints() -> list[Endpoint]:
    return [
        Endpoint("GET", "/healthz", healthz, "Liveness", "health", response=Health, public=True),
        Endpoint(
            "GET",
            "/readyz",
            readyz,
            "Readiness (database reachable)",
            "health",
            response=Health,
            public=True,
        ),
    ]
