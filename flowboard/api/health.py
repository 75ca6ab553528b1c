"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from flowboard.api.bodies import json_answer
from flowboard.api.endpoint import Endpoint
from flowboard.api.schemas import DiskState, Health
from flowboard.keys import DATABASE_HEALTH, PROVIDERS, SPACE


async def healthz(request: web.Request) -> web.Response:
    return json_answer(Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """503 while the database does not answer a ping within its timeout (dead or hung).

    Low disk space is reported ("disk": "low", status "degraded") without failing the
    probe: reads and edits still work, only uploads and runs are refused.
    """
    ready, providers, spaces = await asyncio.gather(
        request.app[DATABASE_HEALTH].ping(),
        request.app[PROVIDERS].reachability(),
        request.app[SPACE].check(),
    )
    low = any(space.low for space in spaces)
    health = Health(
        status="unavailable" if not ready else "degraded" if low else "ok",
        database="up" if ready else "down",
        providers=providers,
        disk="low" if low else "ok",
        filesystems=[DiskState.model_validate(space.to_json()) for space in spaces],
    )
    return json_answer(health, 200 if ready else 503)


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET",
            "/healthz",
            healthz,
            "Liveness",
            "health",
            response=Health,
            public=True,
            database=False,
        ),
        Endpoint(
            "GET",
            "/readyz",
            readyz,
            "Readiness: 503 while the database does not answer; providers and disk space",
            "health",
            response=Health,
            public=True,
            database=False,
        ),
    ]
