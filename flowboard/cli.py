"""The `flowboard` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from flowboard.auth.tokens import ApiToken, TokenService
from flowboard.config import ConfigError, Settings, load_settings
from flowboard.log import configure_logging

_LOGGER = logging.getLogger(__name__)

# Collections of the youngest generation come after this many new container objects
# (CPython's default is 700). See settle_gc().
GC_YOUNG_THRESHOLD = 20_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowboard", description="Flowboard canvas service")
    parser.add_argument("--config", type=Path, help="config file (default: ./config.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    _token_parser(commands)
    return parser


def _org(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise argparse.ArgumentTypeError("1-64 letters, digits or _ . : -")
    return value


def _token_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="create, list and revoke API tokens")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it (shown only once)")
    create.add_argument("--org", required=True, type=_org, help="organisation the token acts for")
    create.add_argument("--name", required=True, help="what the token is for")
    listing = actions.add_parser("list", help="list tokens (never their plain text)")
    listing.add_argument("--org", type=_org, help="only this organisation's tokens")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id", help="token id (tok_...)")


def _settings(args: argparse.Namespace) -> Settings:
    path: Path | None = args.config
    if path is None and Path("config.toml").exists():
        path = Path("config.toml")
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


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM, then shut down gracefully."""
    from flowboard.app import create_app

    app = create_app(settings)
    app.on_startup.append(settle_gc)  # after the start-up contexts, imports included
    loop = _event_loop(settings.server.event_loop)
    _LOGGER.info(
        "serving",
        extra={
            "host": settings.server.host,
            "port": settings.server.port,
            "event_loop": type(loop).__module__,
        },
    )
    web.run_app(
        app,
        loop=loop,
        host=settings.server.host,
        port=settings.server.port,
        shutdown_timeout=settings.server.shutdown_grace_seconds,
        access_log=None,
        print=None,
    )
    return 0


TOKEN_COLUMNS = ("id", "org", "name", "created", "last_used", "state")


def _describe_token(token: ApiToken) -> str:
    used = f"{token.last_used_at:%Y-%m-%dT%H:%M:%SZ}" if token.last_used_at else "-"
    state = "active" if token.active else f"revoked {token.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
    created = f"{token.created_at:%Y-%m-%dT%H:%M:%SZ}"
    return "\t".join((token.id, token.org_id, token.name, created, used, state))


async def _create_token(tokens: TokenService, args: argparse.Namespace) -> int:
    issued = await tokens.create(args.org, args.name)
    sys.stderr.write(f"created {issued.token.id} for org {args.org}; it is shown only once\n")
    sys.stdout.write(f"{issued.plain}\n")  # stdout holds the token alone, for scripts
    return 0


async def _list_tokens(tokens: TokenService, args: argparse.Namespace) -> int:
    rows = ["\t".join(TOKEN_COLUMNS), *(_describe_token(t) for t in await tokens.list(args.org))]
    sys.stdout.write("".join(f"{row}\n" for row in rows))
    return 0


async def _revoke_token(tokens: TokenService, args: argparse.Namespace) -> int:
    revoked = await tokens.revoke(args.id)
    if revoked is None:
        sys.stderr.write(f"flowboard: no token {args.id!r}\n")
        return 1
    sys.stdout.write(f"revoked {revoked.id}\n")
    return 0


async def _token_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `flowboard token ...` action against the configured database."""
    from flowboard.db.lifecycle import open_database
    from flowboard.store.tokens import TokenStore

    action = {"create": _create_token, "list": _list_tokens, "revoke": _revoke_token}[args.action]
    async with open_database(settings) as database:
        return await action(TokenService(TokenStore(database)), args)


def token_command(settings: Settings, args: argparse.Namespace) -> int:
    """`flowboard token create|list|revoke`."""
    return asyncio.run(_token_command(settings, args))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        if args.command == "token":
            return token_command(settings, args)
        return serve(settings)
    except Exception as exc:  # start-up failures: one clear line, no traceback
        message = str(exc) or type(exc).__name__
        _LOGGER.error("start-up failed: %s", message)
        sys.stderr.write(f"flowboard: start-up failed: {message}\n")
        return 1
