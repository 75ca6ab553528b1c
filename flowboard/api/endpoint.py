"""An endpoint declares its route and its models once; routes and OpenAPI come from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    """A path, query or header parameter documented in OpenAPI."""

    name: str
    where: str  # "path" | "query" | "header"
    description: str = ""
    schema_type: str = "string"
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One route: method, path, handler, and the models it reads and writes."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    params: Sequence[Param] = field(default_factory=tuple)
    content_type: str = "application/json"
    public: bool = False
    accepts_ticket: bool = False  # a stream ticket (?ticket=) may stand in for the header
    rate_limited: bool = False  # charged to the caller's bucket (api/ratelimit.py)
    needs_space: bool = False  # refused with 507 while disk space is low (api/guards.py)
    database: bool = True  # answers 503 at once while the database is down (api/guards.py)
    # Other answers it documents: (status, body model or None for the error body, text).
    also: Sequence[tuple[int, type[BaseModel] | None, str]] = field(default_factory=tuple)

    def route(self) -> web.RouteDef:
        return web.route(self.method, self.path, self.handler)
