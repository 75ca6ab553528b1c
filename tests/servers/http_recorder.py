"""A real HTTP server on a loopback port that records every request it gets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Respond = Callable[["HttpRecorder", Recorded], Awaitable[web.StreamResponse]]


async def answer_ok(recorder: HttpRecorder, request: Recorded) -> web.StreamResponse:
    return web.Response(text="ok")


@dataclass
class HttpRecorder:
    """Records requests and answers them with `respond`; can stop and start on its port.

    port: 0 picks a free port on the first start; later starts reuse it.
    """

    respond: Respond = answer_ok
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    received: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        recorded = Recorded(
            request.method, request.path_qs, dict(request.headers), await request.read()
        )
        async with self.received:
            self.requests.append(recorded)
            self.received.notify_all()
        return await self.respond(self, recorded)

    async def start(self) -> HttpRecorder:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        server = TestServer(app, host=self.host, port=self.port or None)
        await server.start_server()
        self._server, self.port = server, int(server.port or 0)
        return self

    async def stop(self) -> None:
        """Stop listening: a connection to the port is now refused."""
        if self._server is not None:
            await self._server.close()
            self._server = None

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    async def wait_for(self, count: int, timeout: float = 30.0) -> list[Recorded]:
        """Wait until at least `count` requests arrived."""
        async with asyncio.timeout(timeout), self.received:
            await self.received.wait_for(lambda: len(self.requests) >= count)
            return list(self.requests)


MakeRecorder = Callable[..., Awaitable[HttpRecorder]]


@pytest.fixture
async def http_recorder() -> AsyncIterator[MakeRecorder]:
    """Start recording servers: `await http_recorder(respond=..., host=...)`."""
    made: list[HttpRecorder] = []

    async def make(**kwargs: Any) -> HttpRecorder:
        recorder = HttpRecorder(**kwargs)
        made.append(recorder)
        return await recorder.start()

    yield make
    for recorder in made:
        await recorder.stop()


@dataclass
class ConnectSpy:
    """Every address the event loop was asked to connect a socket to."""

    addresses: list[tuple[Any, ...]] = field(default_factory=list)


@pytest.fixture
async def connect_spy(monkeypatch: pytest.MonkeyPatch) -> ConnectSpy:
    """Record the loop's outgoing socket connections (aiohttp connects through sock_connect)."""
    loop = asyncio.get_running_loop()
    spy = ConnectSpy()
    original = loop.sock_connect

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        spy.addresses.append(tuple(address))
        await original(sock, address)

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    return spy
