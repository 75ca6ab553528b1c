"""Build tracing from the standard OTEL_* environment: the SDK is imported only here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from flowboard.tracing import context

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_LOGGER = logging.getLogger(__name__)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_SERVICE_NAME = "flowboard"


def configured(env: Mapping[str, str]) -> bool:
    """Whether an OTLP endpoint is set (and the SDK not disabled by OTEL_SDK_DISABLED)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def _instrumentors() -> list[Any]:
    """SDK HTTP calls (aiohttp, httpx) and every database command (pymongo)."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    return [AioHttpClientInstrumentor(), HTTPXClientInstrumentor(), PymongoInstrumentor()]


@dataclass
class Tracing:
    """The SDK's tracer provider, exporting in batches over OTLP/HTTP."""

    provider: TracerProvider

    def middleware(self) -> Any:
        """The aiohttp server instrumentation: one SERVER span per request."""
        from opentelemetry.instrumentation.aiohttp_server import (
            AioHttpServerInstrumentor,
            create_aiohttp_middleware,
        )

        # Its middleware reads settings (excluded URLs, semantic conventions, meters) that
        # only instrument() sets; instrument() also swaps web.Application for a subclass
        # of every app made after it, which uninstrument() undoes: we add it to ours only.
        instrumentor = AioHttpServerInstrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            with warnings.catch_warnings():  # aiohttp discourages that subclass: unused
                warnings.simplefilter("ignore", DeprecationWarning)
                instrumentor.instrument(tracer_provider=self.provider)
            instrumentor.uninstrument()
        return create_aiohttp_middleware(tracer_provider=self.provider)

    def start(self) -> None:
        """Instrument the client libraries and let the span helpers use this provider."""
        for instrumentor in _instrumentors():
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=self.provider)
        context.activate(self.provider.get_tracer("flowboard"))

    def stop(self) -> None:
        """Undo `start`; the spans still buffered are exported by `shutdown`."""
        context.deactivate()
        for instrumentor in _instrumentors():
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
            # pymongo's listeners cannot be unregistered: the instrumentor keeps its first
            # one (bound to this provider) and only disables it. Forget it, so that an app
            # started later in this process (a test, `flowboard run`) gets one of its own.
            if hasattr(instrumentor, "_commandtracer_instance"):
                instrumentor._commandtracer_instance = None

    def shutdown(self) -> None:
        """Export what is buffered and stop (blocking: up to the exporter's timeout)."""
        self.provider.shutdown()


TRACING = web.AppKey("tracing", Tracing)


@contextlib.asynccontextmanager
async def tracing_on(tracing: Tracing) -> AsyncIterator[None]:
    """Trace for the block; at its end export the last spans off the event loop."""
    tracing.start()
    try:
        yield
    finally:
        tracing.stop()
        await asyncio.to_thread(tracing.shutdown)


def from_env(env: Mapping[str, str]) -> Tracing | None:
    """Tracing as the OTEL_* variables configure it, or None when no endpoint is set.

    The SDK itself reads the endpoint, headers, OTEL_TRACES_SAMPLER(_ARG) and the batch
    settings (OTEL_BSP_*); OTEL_SERVICE_NAME defaults to "flowboard".
    """
    if not configured(env):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = env.get("OTEL_SERVICE_NAME", "").strip() or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _LOGGER.info("tracing on: OTLP export", extra={"service_name": service})
    return Tracing(provider)
