"""The listening socket: aiohttp's protocol behind a guard of our own.

aiohttp has no deadline for reading a request's head, nor a cap per client address, so
every connection's protocol is wrapped in a `ConnectionGuard`:

- a connection gets `server.header_timeout_seconds` to deliver its first request head
  (answered `408` and closed otherwise; a kept-alive connection's later heads are bounded
  by `server.keepalive_seconds`, aiohttp's own idle deadline, which partial data does not
  extend);
- at most `server.max_connections_per_address` connections per client address are open
  at once (more are answered `503` and closed);
- whoever needs to know when a connection closes (an event stream) gets a future
  resolved by the transport's own `connection_lost`, not at its next write.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from flowboard.config import Settings
from flowboard.log_throttle import LogThrottle
from flowboard.process.sdnotify import Notifier
from flowboard.process.signals import StopRequest
from flowboard.process.watchdog import LoopWatchdog, WatchdogPolicy

_LOGGER = logging.getLogger(__name__)

HEAD_END = b"\r\n\r\n"
REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@dataclass
class ConnectionLimits:
    """Per-listener limits, and the open connections of each client address."""

    header_timeout: float = 10.0
    per_address: int = 1024  # 0: no cap
    open: Counter[str] = field(default_factory=Counter)
    timed_out: int = 0
    refused: int = 0

    def acquire(self, address: str) -> bool:
        if self.per_address and self.open[address] >= self.per_address:
            self.refused += 1
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def connections(self) -> int:
        return sum(self.open.values())


def _answer_and_close(transport: asyncio.BaseTransport, answer: bytes) -> None:
    # uvloop's transports are not registered as asyncio.Transport: no isinstance here.
    stream = cast(asyncio.Transport, transport)
    if not stream.is_closing():
        stream.write(answer)
        stream.close()


# The protocol of a refused connection: it is closed at once and gets nothing.
_REFUSED = asyncio.Protocol()


class ConnectionGuard(asyncio.Protocol):
    """aiohttp's request handler for one connection, with a head deadline and an address cap."""

    def __init__(self, server: web.Server, limits: ConnectionLimits) -> None:
        self._server = server
        self._inner: asyncio.Protocol = _REFUSED
        self._limits = limits
        self._address: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, for a head end split across reads
        self._closed: asyncio.Future[None] | None = None
        self._lost = False

    def closed(self) -> asyncio.Future[None]:
        """A future resolved once the connection is lost."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            if self._lost:
                self._closed.set_result(None)
        return self._closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "-"
        if not self._limits.acquire(address):
            _LOGGER.debug("connection refused: too many from %s", address)
            _answer_and_close(transport, TOO_MANY)
            return
        self._address = address
        self._inner = self._server()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._limits.header_timeout, self._head_late, transport)
        self._inner.connection_made(transport)

    def _head_late(self, transport: asyncio.BaseTransport) -> None:
        self._timer = None
        self._limits.timed_out += 1
        _LOGGER.debug("request head not received in time from %s", self._address)
        _answer_and_close(transport, REQUEST_TIMEOUT)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if HEAD_END in seen:
                self._timer.cancel()
                self._timer = None
                self._tail = b""
            else:
                self._tail = seen[-(len(HEAD_END) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._address is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._limits.release(self._address)
        self._inner.connection_lost(exc)


def closed_future(transport: asyncio.BaseTransport | None) -> asyncio.Future[None] | None:
    """A future resolved when the connection closes; None where no guard watches it."""
    if transport is None:
        return None
    protocol = transport.get_protocol()
    return protocol.closed() if isinstance(protocol, ConnectionGuard) else None


class GuardedSite(web.BaseSite):
    """A listener on a bound socket whose connections are guarded (module docstring)."""

    def __init__(
        self, runner: web.BaseRunner, sock: socket.socket, limits: ConnectionLimits
    ) -> None:
        super().__init__(runner, backlog=1024)
        self._sock = sock
        self.limits = limits

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        limits = self.limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: ConnectionGuard(server, limits), sock=self._sock, backlog=self._backlog
        )


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log: a malformed request is one WARNING line, not a traceback.

    Anyone can send bytes that are not HTTP; logging each with a traceback at ERROR
    would let them flood the log and hide real failures.
    """

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger)
        # and only the first few a minute: they need no token (log_throttle.py)
        self.throttle = LogThrottle(logger, "malformed requests refused")

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            if self.throttle.allow():
                self.logger.warning("malformed request refused: %s", error.message or error)
            return
        self.logger.exception(msg, *args, **kwargs)


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,
        logger=ServerLog(logging.getLogger("aiohttp.server")),
        keepalive_timeout=settings.server.keepalive_seconds,
        shutdown_timeout=settings.server.shutdown_grace_seconds,
        handle_signals=False,
    )


async def start(
    app: web.Application, settings: Settings, sock: socket.socket
) -> tuple[web.AppRunner, GuardedSite]:
    """Start serving `app` on a bound socket (start-up hooks run first)."""
    server = settings.server
    runner = make_runner(app, settings)
    limits = ConnectionLimits(server.header_timeout_seconds, server.max_connections_per_address)
    try:
        # A refused start (a cleanup context raising) unwinds the contexts already started.
        await runner.setup()
        site = GuardedSite(runner, sock, limits)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


async def serve_until_stopped(
    app: web.Application, settings: Settings, sock: socket.socket, stop: StopRequest
) -> None:
    """Serve until `stop` is requested (SIGTERM, SIGINT), then shut down gracefully.

    Tells systemd when it is ready and when it stops, and keeps the loop's watchdog
    (flowboard/process/watchdog.py) beating throughout, shutdown included.
    """
    notifier = Notifier.from_environ()
    watchdog_settings = settings.watchdog
    policy = WatchdogPolicy(watchdog_settings.stall_seconds, watchdog_settings.exit_after_seconds)
    watchdog = LoopWatchdog(policy, notifier)
    watchdog.start()
    try:
        runner, _ = await start(app, settings, sock)
        if notifier is not None:
            notifier.send("READY=1")
        try:
            await stop.wait()
        finally:
            if notifier is not None:
                notifier.send("STOPPING=1")
            await runner.cleanup()
    finally:
        await watchdog.stop()
