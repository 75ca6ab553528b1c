"""Build the aiohttp Application: every service wired here, each with its cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from flowboard.api.audit import AUDIT
from flowboard.api.auth import ACCESS, REFUSALS, AccessRules, auth_middleware, refusal_throttle
from flowboard.api.errors import error_middleware
from flowboard.api.guards import GUARDS, RouteGuards, database_middleware, space_middleware
from flowboard.api.ratelimit import RATE_LIMITS, RateLimiter, ratelimit_middleware
from flowboard.api.routes import setup_routes
from flowboard.audit.log import AuditLog
from flowboard.auth.service import Authenticator
from flowboard.budgets.service import Budgets
from flowboard.budgets.store import BudgetStore
from flowboard.canvas.limits import FlowLimits
from flowboard.canvas.service import CanvasService
from flowboard.canvas.store import FlowStore
from flowboard.cluster.presence import present
from flowboard.config import Settings
from flowboard.costs.prices import PriceTable
from flowboard.db.lifecycle import open_supervised
from flowboard.db.outage import DatabaseHealth, is_outage, watching
from flowboard.events.bus import EventBus
from flowboard.keys import (
    ASSETS,
    AUTH,
    BUS,
    CANVAS,
    DATABASE,
    DATABASE_HEALTH,
    DB_SUPERVISOR,
    DECODER,
    ENGINE,
    HUB,
    METRICS,
    MIRROR,
    PROVIDERS,
    SETTINGS,
    SPACE,
    STORAGE,
    WEBHOOKS,
)
from flowboard.metrics import Metrics
from flowboard.nodes.registry import generation_types, load_plugins
from flowboard.providers.registry import open_providers
from flowboard.runs.engine import ExecutionEngine
from flowboard.runs.generation import GenerationProcessor
from flowboard.runs.inputs import InputResolver
from flowboard.runs.planner import RunPlanner
from flowboard.runs.queue import ProviderQueues
from flowboard.runs.reuse import Reuse
from flowboard.storage.factory import open_storage
from flowboard.storage.space import SpaceGuard
from flowboard.store.assets import AssetStore
from flowboard.store.executions import ExecutionStore
from flowboard.store.tokens import TokenStore
from flowboard.streams.cluster import open_hub
from flowboard.streams.hub import StreamHub
from flowboard.tasks import cancel_and_wait, supervised_loop
from flowboard.tracing.setup import TRACING, from_env, tracing_on
from flowboard.webhooks.service import open_webhooks

_LOGGER = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0


def _stop_serving() -> None:
    """The embedded database keeps dying: stop like on SIGTERM (serve then exits 1).

    Sent to the process, not raised in this thread: serve takes SIGTERM in its signal
    thread (flowboard/process/signals.py).
    """
    os.kill(os.getpid(), signal.SIGTERM)


async def _tracing_ctx(app: web.Application) -> AsyncIterator[None]:
    """Traces, when an OTLP endpoint is set: first up (before the database client), last down."""
    tracing = app.get(TRACING)
    if tracing is None:
        yield
        return
    async with tracing_on(tracing):
        yield


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Connect to the configured MongoDB, or start (and supervise) the embedded one first."""
    settings = app[SETTINGS].database
    async with open_supervised(app[SETTINGS], on_give_up=_stop_serving) as opened:
        app[DATABASE], app[DB_SUPERVISOR] = opened.database, opened.supervisor
        health = DatabaseHealth(
            opened.database, settings.health_interval_seconds, settings.ping_timeout_seconds
        )
        app[DATABASE_HEALTH] = health
        async with watching(health):
            yield


async def _audit_ctx(app: web.Application) -> AsyncIterator[None]:
    """The audit log (its own collection, records kept audit.retention_days)."""
    log = AuditLog(app[DATABASE])
    await log.ensure_indexes(app[SETTINGS].audit.retention_days)
    app[AUDIT] = log
    yield


async def _presence_ctx(app: web.Application) -> AsyncIterator[None]:
    """Refuse to start beside another server of this database unless media is shared."""
    async with present(app[SETTINGS], app[DATABASE]):
        yield


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    """API tokens (from the database), issuer JWTs, and the stream ticket book."""
    settings = app[SETTINGS]
    shared = app[DATABASE] if settings.cluster.enabled else None
    app[AUTH] = Authenticator.from_settings(settings.auth, TokenStore(app[DATABASE]), shared)
    yield


async def _sweep_channels(hub: StreamHub) -> None:
    async def sweep() -> None:
        dropped = hub.sweep()
        if dropped:
            _LOGGER.debug("idle stream channels dropped", extra={"count": dropped})

    await supervised_loop("stream sweeper", sweep, lambda: asyncio.sleep(SWEEP_SECONDS))


async def _canvas_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_hub(app[SETTINGS], app[DATABASE]) as hub:
        app[HUB] = hub
        limits = app[SETTINGS].canvas
        app[CANVAS] = CanvasService(
            FlowStore(app[DATABASE]),
            hub,
            FlowLimits(limits.max_nodes, limits.max_edges, limits.max_flow_bytes),
        )
        sweeper = asyncio.create_task(_sweep_channels(hub), name="flowboard.stream-sweeper")
        try:
            yield
        finally:
            await cancel_and_wait({sweeper}, "stream sweeper")


async def _decoder_ctx(app: web.Application) -> AsyncIterator[None]:
    """Threads decoding uploaded images: a 40-megapixel decode must not stall the loop."""
    threads = app[SETTINGS].server.decode_threads
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="flowboard-decode")
    app[DECODER] = pool
    try:
        yield
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    space = SpaceGuard.from_settings(app[SETTINGS])
    app[SPACE] = space
    async with open_storage(app[SETTINGS], space.reserve) as storage:
        app[STORAGE] = storage
        yield


async def _providers_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_providers(app[SETTINGS]) as providers:
        app[PROVIDERS] = providers
        yield


async def _mirror_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].firestore
    if not settings.enabled:
        app[MIRROR] = None
        yield
        return
    from flowboard.mirror.firestore import FirestoreMirror  # ~30 MB of gRPC only when on

    mirror = FirestoreMirror(settings)
    app[MIRROR] = mirror
    await mirror.start()
    try:
        yield
    finally:
        await mirror.stop(timeout=5.0)


async def _webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Webhook subscriptions, the outbox and its delivery worker (runs until shutdown)."""
    async with open_webhooks(app[SETTINGS], app[DATABASE]) as webhooks:
        app[WEBHOOKS] = webhooks
        yield


async def _engine_ctx(app: web.Application) -> AsyncIterator[None]:
    """The bus, the engine and its processors; resume unfinished runs once up."""
    settings = app[SETTINGS]
    health = app[DATABASE_HEALTH]
    bus = EventBus(settings.execution.handler_attempts, settings.execution.handler_backoff_seconds)
    bus.pause = health.pause_for  # a database outage is waited out, not a failed attempt
    assets = AssetStore(app[DATABASE])
    engine = ExecutionEngine(
        ExecutionStore(app[DATABASE]),
        app[CANVAS],
        app[HUB],
        bus,
        settings.execution,
        mirror=app[MIRROR],
        metrics=app[METRICS],
    )
    reuse, prices = Reuse(assets), PriceTable(settings.costs)
    budgets = Budgets(BudgetStore(app[DATABASE]), settings.costs.unit)
    generation = GenerationProcessor(
        tasks=engine,
        assets=assets,
        canvas=app[CANVAS],
        providers=app[PROVIDERS],
        storage=app[STORAGE],
        bus=bus,
        runner=engine.runner,
        resolver=InputResolver(assets, app[STORAGE], settings.server.max_upload_bytes),
        settings=settings.execution,
        work_dir=settings.data_path / "tmp",
        kinds=generation_types(),
        reuse=reuse,
        prices=prices,
        budgets=budgets,
        queues=ProviderQueues(settings.queue.limits, settings.queue.eta_window),
    )
    engine.planner, engine.budgets = RunPlanner(prices, app[PROVIDERS], reuse), budgets
    generation.on_retry = lambda node_type: app[METRICS].provider_retries.labels(node_type).inc()
    for node_type in generation.kinds:
        engine.processors[node_type] = generation
    bus.register(engine)
    bus.register(generation)
    bus.register(app[WEBHOOKS].outbox)  # before resume: replayed events queue webhooks too
    app[BUS], app[ASSETS], app[ENGINE] = bus, assets, engine
    await engine.resume()
    wake = asyncio.Event()
    # Jobs that met a database outage ended and wait for the reaper: run it as soon as the
    # database is back, and once more when calls that were in flight have timed out.
    settle = (
        settings.database.socket_timeout_seconds
        + settings.database.server_selection_timeout_seconds
    )
    timers: list[asyncio.TimerHandle] = []

    def recovered() -> None:
        wake.set()
        timers[:] = [asyncio.get_running_loop().call_later(settle, wake.set)]

    unsubscribe = health.on_recovered(recovered)
    reaper = asyncio.create_task(
        _reap(engine, settings.execution.reaper_seconds, wake), name="flowboard.reaper"
    )
    try:
        yield
    finally:
        unsubscribe()
        for timer in timers:
            timer.cancel()
        await cancel_and_wait({reaper}, "reaper")
        await engine.runner.shutdown(settings.server.shutdown_grace_seconds)
        await bus.close(timeout=5.0)


async def _reap(engine: ExecutionEngine, every: float, wake: asyncio.Event) -> None:
    """Periodically (or when woken) re-drive running tasks that lost their job."""

    async def woken() -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await wake.wait()
        wake.clear()

    # A database outage must not kill the reaper: it logs once and tries again.
    await supervised_loop("reaper", engine.reap, woken, is_outage)


async def _close_streams(app: web.Application) -> None:
    """On shutdown, end every open event stream so the server can stop."""
    if HUB in app:
        app[HUB].close()


def create_app(settings: Settings) -> web.Application:
    """The whole service as one aiohttp Application."""
    tracing = from_env(os.environ)  # None (and no SDK imported) without an OTLP endpoint
    app = web.Application(
        # the request span outermost, so every other middleware runs inside it;
        # auth inside error_middleware: its refusals and failures keep the JSON error shape;
        # a known database outage answers 503 before auth (which reads tokens from it);
        # rate limits inside auth: they are charged to the principal it found; the disk
        # space check (507) before them: a refused run costs the caller nothing
        middlewares=[
            *([tracing.middleware()] if tracing is not None else []),
            error_middleware,
            database_middleware,
            auth_middleware,
            space_middleware,
            ratelimit_middleware,
        ],
        client_max_size=settings.server.max_body_bytes,
    )
    if tracing is not None:
        app[TRACING] = tracing
    load_plugins(settings.plugins)  # before the routes: their node types are in OpenAPI
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app.cleanup_ctx.extend(
        [
            _tracing_ctx,
            _database_ctx,
            _presence_ctx,
            _audit_ctx,
            _auth_ctx,
            _canvas_ctx,
            _storage_ctx,
            _decoder_ctx,
            _providers_ctx,
            _mirror_ctx,
            _webhooks_ctx,
            _engine_ctx,
        ]
    )
    app.on_shutdown.append(_close_streams)
    endpoints = setup_routes(app)
    app[ACCESS] = AccessRules.from_endpoints(endpoints, settings.auth)
    app[REFUSALS] = refusal_throttle()
    app[RATE_LIMITS] = RateLimiter.from_endpoints(settings.ratelimit, endpoints)
    app[GUARDS] = RouteGuards.from_endpoints(endpoints)
    return app
