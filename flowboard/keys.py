"""Typed keys for the services kept on the aiohttp Application.

Only services of the layers below the API are named here; the API's own (access
rules, rate limits, route guards) are declared beside their classes in `api/`, so
this module never imports the layer that imports it.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from flowboard.auth.service import Authenticator
    from flowboard.canvas.service import CanvasService
    from flowboard.config import Settings
    from flowboard.db.database import Database
    from flowboard.db.outage import DatabaseHealth
    from flowboard.db.supervisor import DatabaseSupervisor
    from flowboard.events.bus import EventBus
    from flowboard.metrics import Metrics
    from flowboard.mirror.firestore import FirestoreMirror
    from flowboard.providers.registry import ProviderRegistry
    from flowboard.runs.engine import ExecutionEngine
    from flowboard.storage.base import Storage
    from flowboard.storage.space import SpaceGuard
    from flowboard.store.assets import AssetStore
    from flowboard.streams.hub import StreamHub
    from flowboard.webhooks.service import WebhookService

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
DATABASE: web.AppKey[Database] = web.AppKey("database")
HUB: web.AppKey[StreamHub] = web.AppKey("hub")
CANVAS: web.AppKey[CanvasService] = web.AppKey("canvas")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
BUS: web.AppKey[EventBus] = web.AppKey("bus")
PROVIDERS: web.AppKey[ProviderRegistry] = web.AppKey("providers")
ASSETS: web.AppKey[AssetStore] = web.AppKey("assets")
ENGINE: web.AppKey[ExecutionEngine] = web.AppKey("engine")
MIRROR: web.AppKey[FirestoreMirror | None] = web.AppKey("mirror")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
AUTH: web.AppKey[Authenticator] = web.AppKey("auth")
WEBHOOKS: web.AppKey[WebhookService] = web.AppKey("webhooks")
DATABASE_HEALTH: web.AppKey[DatabaseHealth] = web.AppKey("database_health")
DB_SUPERVISOR: web.AppKey[DatabaseSupervisor | None] = web.AppKey("db_supervisor")
SPACE: web.AppKey[SpaceGuard] = web.AppKey("space")
# Threads that decode uploaded images (CPU-heavy, kept off the event loop).
DECODER: web.AppKey[Executor] = web.AppKey("decoder")
