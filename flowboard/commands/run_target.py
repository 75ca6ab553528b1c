"""Which server `flowboard run` talks to, and with which token.

- `--server URL` (with `--token`, or `$FLOWBOARD_TOKEN`): that server, as any client.
- neither, with `flowboard serve` running on this data directory: that service, with a
  token made for this run in its database and revoked when the run ends.
- neither, and nothing running: the service itself, started in this process on a free
  loopback port (the embedded database too, by default) and stopped at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from aiohttp import web

from flowboard import runfiles
from flowboard.config import Settings
from flowboard.db.database import Database

_LOGGER = logging.getLogger(__name__)
TOKEN_ENV = "FLOWBOARD_TOKEN"
RUN_TOKEN_NAME = "flowboard run (temporary)"


@dataclass(frozen=True)
class Target:
    """A server's base URL and the bearer token to call it with (None: auth is off)."""

    base_url: str
    token: str | None
    where: str


@contextlib.asynccontextmanager
async def _run_token(
    settings: Settings, org: str, database: Callable[[], AbstractAsyncContextManager[Database]]
) -> AsyncIterator[str | None]:
    """A token for `org` that lives as long as the block (none while auth is off)."""
    from flowboard.auth.tokens import TokenService
    from flowboard.store.tokens import TokenStore

    if not settings.auth.enabled:
        yield None
        return
    async with database() as db:
        tokens = TokenService(TokenStore(db))
        issued = await tokens.create(org, RUN_TOKEN_NAME)
        try:
            yield issued.plain
        finally:
            await tokens.revoke(issued.token.id)


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def _in_process(settings: Settings, org: str) -> AsyncIterator[Target]:
    """The whole service in this process, on a free loopback port, for one run."""
    from flowboard.app import create_app
    from flowboard.keys import DATABASE

    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()  # the database (embedded by default), storage, engine…
    sock = _loopback_socket()
    try:
        await web.SockSite(runner, sock).start()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"

        @contextlib.asynccontextmanager
        async def database() -> AsyncIterator[Database]:
            yield app[DATABASE]

        async with _run_token(settings, org, database) as token:
            yield Target(url, token, "in-process")
    finally:
        await runner.cleanup()
        sock.close()


@contextlib.asynccontextmanager
async def open_target(
    settings: Settings, server: str | None, token: str | None, org: str
) -> AsyncIterator[Target]:
    """The server of this run (see the module's docstring)."""
    if server:
        yield Target(server.rstrip("/"), token or os.environ.get(TOKEN_ENV) or None, server)
        return
    running = runfiles.read(settings.data_path, runfiles.SERVE_FILE)
    if running is not None and running.url:
        from flowboard.db.shared import open_shared_database

        async with _run_token(settings, org, lambda: open_shared_database(settings)) as tok:
            yield Target(running.url, tok, f"flowboard serve (pid {running.pid})")
        return
    async with _in_process(settings, org) as target:
        yield target
