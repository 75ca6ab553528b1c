"""Traces with OpenTelemetry, set up only when an OTLP endpoint is configured.

`context.py` is what every layer may use (log ids, span helpers: no-ops while tracing is
off, importing no SDK); `setup.py` builds the SDK's provider, exporter and
instrumentations; `storage.py` wraps the storage service so each write is a span.
"""
