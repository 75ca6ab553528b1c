"""The `flowboard` command."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from flowboard import __version__, runfiles
from flowboard.commands import audit, backup, budget, retention, run, tokens
from flowboard.config import ConfigError, Settings, config_path, load_settings
from flowboard.log import configure_logging
from flowboard.process import signals
from flowboard.providers.comfyui_workflow import check_settings
from flowboard.server import serve_until_stopped

_LOGGER = logging.getLogger(__name__)

# Collections of the youngest generation come after this many new container objects
# (CPython's default is 700). See settle_gc().
GC_YOUNG_THRESHOLD = 20_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowboard", description="Flowboard canvas service")
    parser.add_argument("--version", action="version", version=f"flowboard {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        help="config file (default: $FLOWBOARD_CONFIG, else ./config.toml if present)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    tokens.add_parser(commands)
    budget.add_parser(commands)
    run.add_parser(commands)
    backup.add_parsers(commands)
    audit.add_parser(commands)
    retention.add_parsers(commands)
    commands.add_parser("schema", help="print the JSON Schema of flow files (flowboard.flow/v1)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    path = config_path(args.config, os.environ)
    overrides = {}
    given = (("host", getattr(args, "host", None)), ("port", getattr(args, "port", None)))
    server = {k: v for k, v in given if v is not None}
    if server:
        overrides["server"] = server
    return load_settings(path, overrides=overrides)


def _event_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def settle_gc(app: web.Application) -> None:
    """Once started, keep the collector off what lives as long as the process.

    With thousands of jobs in flight, a full collection walked ~1.5 M objects (650 ms)
    every ~10 s: the start-up heap (modules, classes, schemas) is frozen out of it, and
    a larger young generation lets a poll's short-lived objects die before they are
    promoted, which is what kept triggering the full collections.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    _LOGGER.info("garbage collector settled", extra={"frozen": gc.get_freeze_count()})


FIRST_TOKEN_HINT = (
    "no API token exists yet: every API route needs one. Create the first with "
    "`flowboard token create --org default --name admin` (it works while serve runs)"
)


async def hint_first_token(app: web.Application) -> None:
    """On a database with no token, say in one line how to make the first one."""
    from flowboard.keys import DATABASE, SETTINGS

    if app[SETTINGS].auth.enabled and await app[DATABASE].tokens.find_one({}, {"_id": 1}) is None:
        _LOGGER.warning(FIRST_TOKEN_HINT)


def _local_url(host: str, port: int) -> str:
    """A URL of the service for commands on this machine (a wildcard address is loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound (not yet listening) to the service's address, to learn its port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _run(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on `loop`, then cancel what is left and close the loop (as run_app did)."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        rest = asyncio.all_tasks(loop)
        for task in rest:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM, then shut down gracefully (or hard, past the deadline)."""
    # Before any thread exists, so that every thread inherits the blocked signals and
    # only the signal thread takes them, also while the loop is stuck.
    signals.block()
    stop = signals.StopRequest()
    signals.StopSignals(stop.request, settings.server.stop_timeout_seconds).start()
    # systemd's watchdog ends a stuck service with SIGABRT: dump every thread first.
    faulthandler.enable(all_threads=True)
    from flowboard.app import create_app

    app = create_app(settings)
    app.on_startup.append(settle_gc)  # after the start-up contexts, imports included
    app.on_startup.append(hint_first_token)
    loop = _event_loop(settings.server.event_loop)
    sock = _bind(settings.server.host, settings.server.port)
    port = int(sock.getsockname()[1])
    entry = runfiles.Published(
        pid=os.getpid(), port=port, url=_local_url(settings.server.host, port)
    )

    async def publish(_: web.Application) -> None:
        # `flowboard run` finds the service through this file; withdrawn on exit.
        runfiles.publish(settings.data_path, runfiles.SERVE_FILE, entry)

    app.on_startup.append(publish)
    _LOGGER.info(
        "serving",
        extra={"host": settings.server.host, "port": port, "event_loop": type(loop).__module__},
    )
    try:
        _run(loop, serve_until_stopped(app, settings, sock, stop))
    finally:
        sock.close()
        runfiles.withdraw(settings.data_path, runfiles.SERVE_FILE, os.getpid())
    from flowboard.keys import DB_SUPERVISOR

    supervisor = app.get(DB_SUPERVISOR)
    return 1 if supervisor is not None and supervisor.gave_up else 0  # the unit restarts


def _print_schema() -> int:
    from flowboard.flowdoc import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return 0


# Each subcommand but serve and schema: its run(settings, args).
COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "run": run.run,
    "backup": backup.run,
    "restore": backup.run,
    "token": tokens.run,
    "budget": budget.run,
    "audit": audit.run,
    "gc": retention.run,
    "usage": retention.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        if args.command == "serve":  # workflow files too, before anything starts
            check_settings(settings)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    level = settings.logging.level
    if args.command in ("run", "backup", "restore") and level in ("DEBUG", "INFO"):
        level = "WARNING"  # their own lines are the output; what they start stays quiet
    configure_logging(level, settings.logging.format)
    try:
        if args.command == "schema":
            return _print_schema()
        command = COMMANDS.get(args.command)
        return serve(settings) if command is None else command(settings, args)
    except Exception as exc:  # one clear line, no traceback
        message = " ".join((str(exc) or type(exc).__name__).split())
        if args.command != "serve":  # a command's own failure, not the service's start-up
            sys.stderr.write(f"flowboard {args.command}: {message}\n")
            return 1
        _LOGGER.error("start-up failed: %s", message)
        sys.stderr.write(f"flowboard: start-up failed: {message}\n")
        return 1
