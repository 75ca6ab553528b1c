"""The active tracer, span helpers and the ids a log line carries.

OpenTelemetry's tracer provider is process-wide by design; the one running app sets
`_ACTIVE` while its tracing context is open and clears it on cleanup. While it is None
every helper returns at once and nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

_ACTIVE: list[Tracer] = []  # at most one: the running app's tracer


def activate(tracer: Tracer) -> None:
    """Make `tracer` the one the helpers use (the app's tracing context does)."""
    _ACTIVE[:] = [tracer]


def deactivate() -> None:
    _ACTIVE.clear()


def active() -> bool:
    return bool(_ACTIVE)


def ids_attributes(ids: Mapping[str, str | None]) -> dict[str, str]:
    """`flowboard.<name>` attributes of the ids that are known."""
    return {f"flowboard.{name}": value for name, value in ids.items() if value}


_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()  # reusable: holds nothing


def span(
    name: str, parent: str | None = None, **ids: str | None
) -> contextlib.AbstractContextManager[Span | None]:
    """A span named `name` with the ids as attributes, child of the current span.

    `parent`: a W3C traceparent to continue instead (a job resumed after a restart).
    While tracing is off: one shared no-op context, nothing made.
    """
    if not _ACTIVE:
        return _OFF
    return _span(_ACTIVE[0], name, parent, ids)


@contextlib.contextmanager
def _span(
    tracer: Tracer, name: str, parent: str | None, ids: Mapping[str, str | None]
) -> Iterator[Span]:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": parent}) if parent else None
    with tracer.start_as_current_span(
        name, context=context, attributes=ids_attributes(ids)
    ) as current:
        yield current


def traceparent() -> str | None:
    """The W3C traceparent of the current span, to store with work that may outlive us."""
    if not _ACTIVE:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, Any] = {}
    TraceContextTextMapPropagator().inject(carrier)
    value = carrier.get("traceparent")
    return value if isinstance(value, str) else None


def log_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span, for a log line ({} when none)."""
    if not _ACTIVE:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
