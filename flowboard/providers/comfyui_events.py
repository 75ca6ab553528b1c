"""The shared ComfyUI event websocket: one reader task, events handed out by prompt id."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from flowboard.providers.base import ErrorCode, PermanentProviderError, TransientProviderError
from flowboard.providers.comfyui_client import ComfyUIClient, RetryPolicy

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComfyEvent:
    """One websocket message for a prompt; type RECONNECTED means "events may be missing"."""

    type: str
    data: dict[str, Any]


RECONNECTED = "flowboard.reconnected"
_QUEUE_SIZE = 1000


class Subscription:
    """The events of one prompt, queued for its follower."""

    def __init__(self, hub: EventHub, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.queue: asyncio.Queue[ComfyEvent] = asyncio.Queue(_QUEUE_SIZE)
        self._hub = hub

    def push(self, event: ComfyEvent) -> None:
        """Queue an event; when the follower lags this far, drop it (reconcile catches up)."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            _LOGGER.warning(
                "comfyui event dropped: follower too slow", extra={"prompt_id": self.prompt_id}
            )

    def close(self) -> None:
        """Stop receiving events."""
        self._hub.unsubscribe(self)


class EventHub:
    """One websocket per provider: read it in a task, hand each prompt's events to followers.

    ComfyUI sends a prompt's events only to the socket whose clientId submitted it, so all
    prompts share this one clientId and socket. The reader reconnects with backoff and
    tells every follower after each (re)connect, since nothing is replayed.
    """

    def __init__(
        self,
        client: ComfyUIClient,
        client_id: str,
        backoff: RetryPolicy,
        connect_timeout: float,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.client_id = client_id
        self._on_connect = on_connect
        self._client, self._backoff, self._connect_timeout = client, backoff, connect_timeout
        self._subs: dict[str, set[Subscription]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def subscribe(self, prompt_id: str) -> Subscription:
        """Receive the events of `prompt_id` (and RECONNECTED markers) until closed."""
        self._ensure_reader()
        sub = Subscription(self, prompt_id)
        self._subs.setdefault(prompt_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription."""
        subs = self._subs.get(sub.prompt_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.prompt_id]

    async def wait_connected(self, timeout: float) -> bool:
        """Start the reader and wait up to `timeout` s for the socket; say if it is open."""
        self._ensure_reader()
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop the reader task and close the socket."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    def _ensure_reader(self) -> None:
        if self._closed:
            raise PermanentProviderError(ErrorCode.UNAVAILABLE, "ComfyUI provider is closed")
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"comfyui-events-{self.client_id}")

    async def _run(self) -> None:
        failures = 0
        while not self._closed:  # ends when close() cancels the task
            failures = await self._session(failures)
            await asyncio.sleep(self._backoff.delay(failures))

    async def _session(self, failures: int) -> int:
        """Connect, read until the socket ends; return the failure count for the backoff."""
        try:
            async with asyncio.timeout(self._connect_timeout):
                ws = await self._client.connect(self.client_id)
        except (TransientProviderError, TimeoutError) as exc:
            if failures == 0:  # log once when the socket starts failing
                _LOGGER.warning(
                    "comfyui websocket unavailable: %s", exc, extra={"client_id": self.client_id}
                )
            return failures + 1
        if failures:
            _LOGGER.info("comfyui websocket connected again", extra={"client_id": self.client_id})
        opened = time.monotonic()
        try:
            self._on_connected()
            await self._read(ws)
        except (aiohttp.ClientError, TimeoutError) as exc:
            _LOGGER.info("comfyui websocket failed: %s", exc, extra={"client_id": self.client_id})
        finally:
            self._connected.clear()
            await ws.close()
        _LOGGER.info("comfyui websocket closed", extra={"client_id": self.client_id})
        # A socket that lived a while was healthy: start the backoff over.
        return 1 if time.monotonic() - opened >= self._backoff.maximum else failures + 1

    def _on_connected(self) -> None:
        self._connected.set()
        if self._on_connect is not None:
            self._on_connect()
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.push(ComfyEvent(RECONNECTED, {}))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:  # ends when the socket closes
            if message.type is aiohttp.WSMsgType.TEXT:
                self._dispatch(message.data)
            elif message.type is aiohttp.WSMsgType.ERROR:
                _LOGGER.info(
                    "comfyui websocket error: %s",
                    ws.exception(),
                    extra={"client_id": self.client_id},
                )
                return
            # Binary frames are live previews: not needed.

    def _dispatch(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
            return
        data: dict[str, Any] = message["data"]
        prompt_id = data.get("prompt_id")
        for sub in list(self._subs.get(str(prompt_id), ())) if prompt_id else ():
            sub.push(ComfyEvent(str(message.get("type")), data))
