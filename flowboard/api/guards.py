"""Refuse work the service cannot do right now, before it starts.

- While the database is known to be down or hung (`db/outage.py`), routes that need it
  answer 503 `database_unavailable` at once instead of waiting for its timeouts.
- While disk space is low (`storage/space.py`), uploads and runs answer 507.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from flowboard.api.endpoint import Endpoint, Handler
from flowboard.db.outage import DatabaseDown
from flowboard.keys import DATABASE_HEALTH, SPACE


@dataclass(frozen=True)
class RouteGuards:
    """Which route handlers need the database, and which need free disk space."""

    database: frozenset[Handler]
    space: frozenset[Handler]

    @classmethod
    def from_endpoints(cls, endpoints: Iterable[Endpoint]) -> RouteGuards:
        listed = list(endpoints)
        return cls(
            frozenset(ep.handler for ep in listed if ep.database),
            frozenset(ep.handler for ep in listed if ep.needs_space),
        )


GUARDS: web.AppKey[RouteGuards] = web.AppKey("guards")


@web.middleware
async def database_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """503 at once while the health watcher sees the database down (its ping failing)."""
    health = request.app.get(DATABASE_HEALTH)
    down = health is not None and not health.available
    if down and request.match_info.handler in request.app[GUARDS].database:
        raise DatabaseDown("the database is not answering")
    return await handler(request)


@web.middleware
async def space_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check free space before a route declared `needs_space` writes anything.

    InsufficientStorage becomes 507 `insufficient_storage` in the error middleware.
    """
    if request.match_info.handler in request.app[GUARDS].space:
        await request.app[SPACE].require()
    return await handler(request)
