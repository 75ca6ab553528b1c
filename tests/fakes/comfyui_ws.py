"""The fake ComfyUI's /ws endpoint: sockets by clientId, routing, and on-demand drops."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.comfyui_records import SentMessage, WsConnection

_LOGGER = logging.getLogger(__name__)

# sid → the (event, data) frames a new socket gets first.
Greeting = Callable[[str], list[tuple[str, dict[str, Any]]]]

CLOSE_TIMEOUT = 2.0  # seconds a server-side close waits for the client's close frame
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 100 * 1024 * 1024}


@dataclass(eq=False)
class _Socket:
    """One open socket and its drop rule (messages still to send before it is dropped)."""

    ws: web.WebSocketResponse
    request: web.Request
    record: WsConnection
    drop_after: int | None = None
    abrupt: bool = False


class SocketHub:
    """Hold the open sockets, route events to a clientId (or all), and drop sockets on demand.

    Like ComfyUI, a socket that reuses an open clientId replaces the old one in the routing
    table; the old socket stays open but receives nothing more. `stale_socket_evicts_new`
    reproduces ComfyUI's bug where the old socket closing removes the new one as well.
    """

    def __init__(self) -> None:
        self.connections: list[WsConnection] = []
        self.sent: list[SentMessage] = []
        self.stale_socket_evicts_new = False
        self._routes: dict[str, _Socket] = {}
        self._open: list[_Socket] = []
        self._closing: set[asyncio.Task[None]] = set()

    def client_ids(self) -> list[str]:
        """Return the clientIds that currently receive events."""
        return list(self._routes)

    async def handle(self, request: web.Request, greeting: Greeting) -> web.WebSocketResponse:
        """Serve one websocket until either side closes it."""
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT)
        await ws.prepare(request)
        requested = request.query.get("clientId") or None
        sid = requested or uuid.uuid4().hex
        sock = _Socket(ws, request, WsConnection(sid, requested))
        self.connections.append(sock.record)
        self._routes[sid] = sock
        self._open.append(sock)
        _LOGGER.debug("fake comfyui: socket %s connected", sid)
        try:
            for event, data in greeting(sid):
                await self._deliver(sock, event, data)
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await self._on_text(sock, message.data)
        finally:
            self._forget(sock)
        return ws

    async def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        """Send to the socket of `sid`, or to every routed socket when `sid` is None."""
        targets = list(self._routes.values()) if sid is None else [self._routes.get(sid)]
        for sock in targets:
            if sock is not None:
                await self._deliver(sock, event, data)

    def drop_after(self, messages: int, client_id: str | None, *, abrupt: bool) -> int:
        """Arm open sockets (of `client_id`, or all) to close after `messages` more messages."""
        armed = 0
        for sock in self._open:
            if client_id is None or sock.record.client_id == client_id:
                sock.drop_after, sock.abrupt = messages, abrupt
                armed += 1
        if messages <= 0:
            for sock in [s for s in self._open if s.drop_after is not None]:
                self._drop(sock, "dropped")
        return armed

    async def close_all(self, reason: str, *, abrupt: bool) -> None:
        """Close every open socket and wait until each close has finished."""
        for sock in list(self._open):
            self._routes.pop(sock.record.client_id, None)
            sock.abrupt = abrupt
            self._drop(sock, reason)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _on_text(self, sock: _Socket, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "feature_flags":
            await self._deliver(sock, "feature_flags", dict(SERVER_FEATURES))

    async def _deliver(self, sock: _Socket, event: str, data: dict[str, Any]) -> None:
        if sock.ws.closed or sock.record.close_reason is not None:
            return
        try:
            await sock.ws.send_json({"type": event, "data": data})
        except ConnectionError:
            return
        sock.record.messages_sent += 1
        self.sent.append(SentMessage(sock.record.client_id, event, data))
        if sock.drop_after is not None:
            sock.drop_after -= 1
            if sock.drop_after <= 0:
                self._drop(sock, "dropped")

    def _drop(self, sock: _Socket, reason: str) -> None:
        """Stop routing to `sock` now and close it in a tracked task."""
        if sock.record.close_reason is None:
            sock.record.close_reason = reason
        if self._routes.get(sock.record.client_id) is sock:
            del self._routes[sock.record.client_id]
        sock.drop_after = None
        task = asyncio.create_task(self._close(sock), name=f"fake-comfyui-close-{reason}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, sock: _Socket) -> None:
        if sock.abrupt and sock.request.transport is not None:
            # A dead process or a cut connection: no close frame, just a lost transport.
            sock.request.transport.abort()
            return
        await sock.ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake comfyui closed")

    def _forget(self, sock: _Socket) -> None:
        sock.record.closed_at = time.monotonic()
        if sock.record.close_reason is None:
            sock.record.close_reason = "client"
        if sock in self._open:
            self._open.remove(sock)
        sid = sock.record.client_id
        if self.stale_socket_evicts_new or self._routes.get(sid) is sock:
            self._routes.pop(sid, None)
        _LOGGER.debug("fake comfyui: socket %s closed (%s)", sid, sock.record.close_reason)
