"""The `flowboard` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from flowboard.config import ConfigError, Settings, load_settings
from flowboard.log import configure_logging

_LOGGER = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowboard", description="Flowboard canvas service")
    parser.add_argument("--config", type=Path, help="config file (default: ./config.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    path: Path | None = args.config
    if path is None and Path("config.toml").exists():
        path = Path("config.toml")
    overrides = {}
    server = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if server:
        overrides["server"] = server
    return load_settings(path, overrides=overrides)


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
    from flowboard.app import create_app

    app = create_app(settings)
    _LOGGER.info("serving", extra={"host": settings.server.host, "port": settings.server.port})
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_grace_seconds,
        access_log=None,
        print=None,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        return serve(settings)
    except Exception as exc:  # start-up failures: one clear line, no traceback
        message = str(exc) or type(exc).__name__
        _LOGGER.error("start-up failed: %s", message)
        sys.stderr.write(f"flowboard: start-up failed: {message}\n")
        return 1
