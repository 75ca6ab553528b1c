"""HTTP calls to a ComfyUI server, mapped into the provider error tree in one place."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from yarl import URL

from flowboard.providers.base import ErrorCode, PermanentProviderError, TransientProviderError

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
MAX_WS_MESSAGE = 32 * 1024 * 1024  # preview images arrive as binary frames
UPLOAD_SUBFOLDER = "flowboard"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter for transient failures."""

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 8.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial <= 0 or self.maximum < self.initial:
            raise ValueError(f"invalid retry policy: {self}")

    def delay(self, failures: int) -> float:
        """Return the pause after `failures` failures in a row, jitter included."""
        base = min(self.maximum, self.initial * 2 ** max(0, failures - 1))
        return float(base + random.uniform(0, self.jitter))

    async def call(
        self, fn: Callable[[], Awaitable[T]], extra: Mapping[str, str] | None = None
    ) -> T:
        """Run `fn`, retrying TransientProviderError only; re-raise the last failure."""

        def log(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            _LOGGER.info(
                "comfyui call failed (attempt %d of %d): %s",
                state.attempt_number,
                self.attempts,
                error,
                extra=extra,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(self.initial, self.maximum, jitter=self.jitter),
            retry=retry_if_exception_type(TransientProviderError),
            before_sleep=log,
            reraise=True,
        )

        async def attempt() -> T:
            # tenacity awaits only coroutine functions; a lambda's coroutine would leak.
            return await fn()

        result: T = await retrying(attempt)
        return result


@dataclass(frozen=True)
class Reply:
    """A non-failing HTTP answer: status and raw body."""

    status: int
    body: bytes

    def json(self) -> Any:
        """Return the decoded JSON body, or None when it is not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class Placement(StrEnum):
    """Where ComfyUI holds a prompt."""

    HISTORY = "history"
    RUNNING = "running"
    PENDING = "pending"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OutputFile:
    """One entry of an output node's `images` list."""

    filename: str
    subfolder: str
    type: str


def _described(error: Any) -> str:
    """Return "message (details)" of one ComfyUI error object."""
    if not isinstance(error, dict):
        return str(error or "invalid")
    message = str(error.get("message") or "invalid")
    details = error.get("details")
    return f"{message} ({details})" if details else message


def _error_text(data: Any) -> str:
    """Describe a 400 from POST /prompt: each failing node's id, class and messages."""
    if not isinstance(data, dict):
        return "ComfyUI refused the prompt"
    node_errors = data.get("node_errors")
    parts = [
        f"node {node_id} ({entry.get('class_type', '?')}): "
        + "; ".join(_described(e) for e in entry.get("errors") or [{}])
        for node_id, entry in (node_errors.items() if isinstance(node_errors, dict) else ())
        if isinstance(entry, dict)
    ]
    if not parts:
        parts = [_described(data.get("error"))]
    return "ComfyUI refused the prompt: " + " | ".join(parts)


class ComfyUIClient:
    """ComfyUI's HTTP API on one aiohttp session; 429, 5xx and network errors are transient."""

    def __init__(self, base_url: str, *, request_timeout: float, heartbeat: float) -> None:
        self._base = URL(base_url.rstrip("/"))
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=request_timeout, sock_read=request_timeout
        )
        self._heartbeat = heartbeat
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, not in the sync constructor.
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    def url(self, path: str) -> URL:
        """Return the absolute URL of a ComfyUI route."""
        return URL(str(self._base) + path)

    async def close(self) -> None:
        """Close the session."""
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _send(self, method: str, path: str, **kwargs: Any) -> Reply:
        """Make one request; raise TransientProviderError for 429, 5xx and network errors."""
        try:
            async with self._session().request(
                method, self.url(path), timeout=self._timeout, **kwargs
            ) as resp:
                body = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise TransientProviderError(f"ComfyUI {method} {path} failed: {reason}") from exc
        if resp.status == 429 or resp.status >= 500:
            raise TransientProviderError(f"ComfyUI {method} {path} answered {resp.status}")
        return Reply(resp.status, body)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = await self._send(method, path, **kwargs)
        if reply.status != 200:
            raise PermanentProviderError(
                ErrorCode.PROVIDER_ERROR, f"ComfyUI {method} {path} answered {reply.status}"
            )
        return reply.json()

    async def upload_image(
        self, name: str, data: bytes, content_type: str, kind: str = "input"
    ) -> str:
        """Upload an input image to ComfyUI's `kind` folder; return the LoadImage value.

        The value is `subfolder/name`, annotated ` [temp]` for the temp folder (LoadImage
        resolves `name [temp]` there).
        """
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type=content_type)
        form.add_field("type", kind)
        form.add_field("subfolder", UPLOAD_SUBFOLDER)
        answer = await self._json("POST", "/upload/image", data=form)
        if not isinstance(answer, dict) or not answer.get("name"):
            raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, "ComfyUI upload gave no name")
        subfolder = str(answer.get("subfolder") or "")
        value = f"{subfolder}/{answer['name']}" if subfolder else str(answer["name"])
        stored = str(answer.get("type") or kind)
        return value if stored == "input" else f"{value} [{stored}]"

    async def system_stats(self) -> None:
        """Ask /system_stats, which answers once the server is up; raise if it does not."""
        await self._json("GET", "/system_stats")

    async def submit(self, graph: dict[str, Any], client_id: str, prompt_id: str) -> None:
        """Queue a prompt under our own id; a 400 becomes a PermanentProviderError."""
        body = {"prompt": graph, "client_id": client_id, "prompt_id": prompt_id}
        reply = await self._send("POST", "/prompt", json=body)
        if reply.status == 200:
            answer = reply.json()
            if isinstance(answer, dict) and answer.get("node_errors"):
                # Some outputs were valid and queued; the others will be missing.
                _LOGGER.warning(
                    "comfyui queued the prompt with node errors: %s",
                    _error_text(answer),
                    extra={"prompt_id": prompt_id},
                )
            return
        raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, _error_text(reply.json()))

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """Return the prompt's history entry, or None when ComfyUI has none."""
        answer = await self._json("GET", f"/history/{prompt_id}")
        entry = answer.get(prompt_id) if isinstance(answer, dict) else None
        return entry if isinstance(entry, dict) else None

    async def queue_placement(self, prompt_id: str) -> Placement:
        """Say whether the prompt is running, pending, or in neither list."""
        answer = await self._json("GET", "/queue")
        if not isinstance(answer, dict):
            return Placement.UNKNOWN
        for key, placement in (
            ("queue_running", Placement.RUNNING),
            ("queue_pending", Placement.PENDING),
        ):
            for item in answer.get(key) or []:
                if isinstance(item, list) and len(item) > 1 and item[1] == prompt_id:
                    return placement
        return Placement.UNKNOWN

    async def interrupt(self, prompt_id: str) -> None:
        """Interrupt the prompt if it is the one running (takes effect between nodes)."""
        await self._send("POST", "/interrupt", json={"prompt_id": prompt_id})

    async def delete_pending(self, prompt_id: str) -> None:
        """Remove the prompt from the pending queue."""
        await self._send("POST", "/queue", json={"delete": [prompt_id]})

    async def open_view(self, output: OutputFile) -> aiohttp.ClientResponse:
        """Open GET /view for streaming; the caller releases the response."""
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        try:
            resp = await self._session().get(
                self.url("/view"), params=params, timeout=self._stream_timeout
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise TransientProviderError(f"ComfyUI GET /view failed: {reason}") from exc
        if resp.status == 200:
            return resp
        resp.release()
        if resp.status == 429 or resp.status >= 500:
            raise TransientProviderError(f"ComfyUI GET /view answered {resp.status}")
        raise PermanentProviderError(
            ErrorCode.PROVIDER_ERROR,
            f"ComfyUI cannot serve output {output.filename!r} ({resp.status})",
        )

    async def connect(self, client_id: str) -> aiohttp.ClientWebSocketResponse:
        """Open the event websocket for `client_id`."""
        scheme = "wss" if self._base.scheme == "https" else "ws"
        url = self.url("/ws").with_scheme(scheme).with_query(clientId=client_id)
        try:
            return await self._session().ws_connect(
                url,
                heartbeat=self._heartbeat,
                max_msg_size=MAX_WS_MESSAGE,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise TransientProviderError(f"ComfyUI websocket failed: {reason}") from exc
