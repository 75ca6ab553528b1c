"""The real app served by `flowboard.server` (the guarded listener `serve` uses) on a
free loopback port, for tests that need real connections rather than aiohttp's test server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from flowboard import server
from flowboard.app import create_app
from flowboard.canvas.model import DEFAULT_ORG
from tests.servers.app import MakeSettings, create_token


@dataclass
class LiveServer:
    """A running app: its runner, listener, address and a token of the default org."""

    app: web.Application
    runner: web.AppRunner
    site: server.GuardedSite
    host: str
    port: int
    token: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


StartLive = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
async def live_server(make_settings: MakeSettings) -> AsyncIterator[StartLive]:
    """Start the real app (settings sections as keywords) behind flowboard.server."""
    started: list[LiveServer] = []

    async def start(**sections: Any) -> LiveServer:
        settings = make_settings(**sections)
        app = create_app(settings)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        runner, site = await server.start(app, settings, sock)
        host, port = sock.getsockname()[:2]
        live = LiveServer(app, runner, site, host, port, await create_token(app, DEFAULT_ORG))
        started.append(live)
        return live

    yield start
    for live in started:
        await live.runner.cleanup()
