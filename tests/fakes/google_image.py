"""A local fake of Google's image generation endpoints for the unmodified google-genai SDK.

Gemini image models (`generateContent`) on the Gemini API, Vertex AI and Vertex express
mode; Imagen (`predict`) on Vertex AI and express mode. On the Gemini API, `predict`
for an Imagen model answers 404 as the service does since Imagen was shut down there
(google-genai 2.x no longer sends it: it refuses `generate_images` without Vertex).
"""

from __future__ import annotations

import asyncio
import base64
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes.google_image_wire import (
    GEMINI_SIZES,
    IMAGEN_FILTERED_REASON,
    IMAGEN_PROMPT_BLOCKED,
    GeminiRequest,
    ImagenRequest,
    Outcome,
    Script,
    parse_generate,
    parse_predict,
    render,
    safety_attributes,
    usage,
)
from tests.fakes.veo_wire import JSON, ApiError, injected_message, json_body
from tests.servers._process import free_port

_TYPES = "type.googleapis.com"
_VERTEX_MODELS = "/v1beta1/projects/{project}/locations/{location}/publishers/google/models"
_EXPRESS_MODELS = "/v1beta1/publishers/google/models"
_SEG = "[^/:]+"  # one path segment that stops before a ":verb" suffix


class Mode(StrEnum):
    """Which flavour of the API a request used."""

    GEMINI = "gemini"
    VERTEX = "vertex"
    EXPRESS = "express"  # Vertex shapes, API key, no project/location in the path


class Route(StrEnum):
    """What a request asked for, across modes."""

    GENERATE = "generate"  # generateContent (Gemini image models)
    PREDICT = "predict"  # predict (Imagen)


@dataclass(frozen=True)
class RequestRecord:
    """One request as it arrived, before any injected misbehaviour."""

    route: Route
    mode: Mode
    path: str
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class CallRecord:
    """One accepted generation request, its body exactly as the client sent it."""

    route: Route
    mode: Mode
    model: str
    body: JSON
    request: GeminiRequest | ImagenRequest


@dataclass
class _Fault:
    remaining: int
    route: Route | None
    status: int  # 0: drop the connection


class FakeGoogleImages:
    """Serve Gemini image and Imagen generation on 127.0.0.1, misbehaving on demand.

    - `default_script` / `enqueue(*scripts)`: how the next requests are answered, one
      script per generateContent or predict request (see `Outcome`).
    - `fail_next(count, status=503, route=None)`, `drop_next(count, route=None)`,
      `fail_randomly(ratio, status, seed, route)`, `delay` (seconds before every answer):
      as the fake Veo service.
    Credentials: `api_key` (x-goog-api-key or ?key=; missing → 403, wrong → 400) for the
    Gemini API and express mode, `token` (Authorization: Bearer) for Vertex (wrong → 401).
    Records: `requests` (every request), `calls` (accepted generation requests).
    """

    def __init__(
        self, *, api_key: str = "fake-api-key", token: str = "fake-token", port: int | None = None
    ) -> None:
        self.api_key, self.token = api_key, token
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.default_script = Script()
        self.delay = 0.0
        self.requests: list[RequestRecord] = []
        self.calls: list[CallRecord] = []
        self._queued: deque[Script] = deque()
        self._faults: list[_Fault] = []
        self._random: tuple[float, tuple[int, ...], Route | None, random.Random] | None = None
        self._runner: web.AppRunner | None = None

    # Test controls --------------------------------------------------------------------

    def enqueue(self, *scripts: Script) -> None:
        """Use `scripts` for the next generation requests, one each."""
        self._queued.extend(scripts)

    def fail_next(self, count: int, status: int = 503, route: Route | None = None) -> None:
        """Answer the next `count` requests (of `route`) with an error `status`."""
        self._faults.append(_Fault(count, route, status))

    def drop_next(self, count: int, route: Route | None = None) -> None:
        """Close the connection of the next `count` requests (of `route`) unanswered."""
        self._faults.append(_Fault(count, route, 0))

    def fail_randomly(
        self,
        ratio: float,
        status: int | tuple[int, ...] = 503,
        seed: int = 0,
        route: Route | None = None,
    ) -> None:
        """Fail a `ratio` share of requests (of `route`) with one of `status`, from `seed`."""
        statuses = status if isinstance(status, tuple) else (status,)
        self._random = (ratio, statuses, route, random.Random(seed)) if ratio > 0 else None

    def count(self, route: Route | None = None, mode: Mode | None = None) -> int:
        """Return how many requests arrived (for `route` / `mode` when given)."""
        return sum(route in (None, r.route) and mode in (None, r.mode) for r in self.requests)

    # Lifecycle ------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on 127.0.0.1:`port`."""
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 2**20)
        model = f"{{model:{_SEG}}}"
        routes: list[tuple[str, Handler, str]] = [
            (f"/v1beta/models/{model}:generateContent", self._generate, "gemini-generate"),
            (f"/v1beta/models/{model}:predict", self._predict, "gemini-predict"),
        ]
        for mode, prefix in (("vertex", _VERTEX_MODELS), ("express", _EXPRESS_MODELS)):
            routes += [
                (f"{prefix}/{model}:generateContent", self._generate, f"{mode}-generate"),
                (f"{prefix}/{model}:predict", self._predict, f"{mode}-predict"),
            ]
        for path, handler, name in routes:
            app.router.add_route("POST", path, handler, name=name)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # Request pipeline -----------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.match_info.route.name
        if name is None:  # Google answers 404 for unknown paths and for a wrong method
            return ApiError(404, f"Method not found: {request.method} {request.path}").response()
        mode_name, route_name = name.split("-")
        mode, route = Mode(mode_name), Route(route_name)
        self.requests.append(RequestRecord(route, mode, request.path, time.monotonic()))
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        status = self._injected_status(route)
        if status == 0:
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        try:
            self._authorize(request, mode)
            if status is not None:
                raise ApiError(status, injected_message(status))
            return await handler(request)
        except ApiError as error:
            return error.response()

    def _injected_status(self, route: Route) -> int | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.route in (None, route):
                fault.remaining -= 1
                return fault.status
        if self._random is not None:
            ratio, statuses, only, rng = self._random
            if only in (None, route) and rng.random() < ratio:
                return rng.choice(statuses)
        return None

    def _authorize(self, request: web.Request, mode: Mode) -> None:
        if mode is Mode.VERTEX:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Request had invalid authentication credentials.")
            return
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key is None:
            raise ApiError(403, "Method doesn't allow unregistered callers. Use an API key.")
        if key != self.api_key:
            info = {"@type": f"{_TYPES}/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            raise ApiError(400, "API key not valid. Please pass a valid API key.", [info])

    async def _script(self) -> Script:
        script = self._queued.popleft() if self._queued else self.default_script
        if script.delay_seconds > 0:
            await asyncio.sleep(script.delay_seconds)
        return script

    # Handlers -------------------------------------------------------------------------

    async def _generate(self, request: web.Request) -> web.Response:
        mode = Mode(str(request.match_info.route.name).split("-")[0])
        model = request.match_info["model"]
        if not model.startswith("gemini-"):
            raise ApiError(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent.",
            )
        body = await json_body(request)
        asked = parse_generate(model, body, vertex=mode is not Mode.GEMINI)
        self.calls.append(CallRecord(Route.GENERATE, mode, model, body, asked))
        script = await self._script()
        answer: JSON = {"modelVersion": model, "responseId": secrets.token_urlsafe(16)}
        if mode is not Mode.GEMINI:
            answer["createTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        tokens = max(1, len(asked.prompt) // 4) + 258 * len(asked.images)
        if script.outcome is Outcome.BLOCKED:
            answer["promptFeedback"] = {"blockReason": script.block_reason}
            answer["usageMetadata"] = usage(tokens, 0)
            return web.json_response(answer)
        answer["candidates"] = [await self._candidate(asked, script)]
        answer["usageMetadata"] = usage(tokens, int(script.outcome is Outcome.SUCCESS))
        return web.json_response(answer)

    async def _candidate(self, asked: GeminiRequest, script: Script) -> JSON:
        if script.outcome is Outcome.FILTERED:
            return {"finishReason": script.finish_reason, "index": 0}
        parts: list[JSON] = [{"text": script.text}]
        if script.outcome is Outcome.SUCCESS:
            key = _key(asked.prompt, asked.seed, 0, len(self.calls))
            data = await asyncio.to_thread(
                render, GEMINI_SIZES[asked.aspect_ratio], asked.mime_type, key
            )
            encoded = base64.b64encode(data).decode()
            parts = [{"inlineData": {"mimeType": asked.mime_type, "data": encoded}}]
        return {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}

    async def _predict(self, request: web.Request) -> web.Response:
        mode = Mode(str(request.match_info.route.name).split("-")[0])
        model = request.match_info["model"]
        if mode is Mode.GEMINI or not model.startswith("imagen-"):
            raise ApiError(
                404,
                f"models/{model} is not found for API version, or is not supported for predict.",
            )
        body = await json_body(request)
        asked = parse_predict(model, body)
        self.calls.append(CallRecord(Route.PREDICT, mode, model, body, asked))
        script = await self._script()
        if script.outcome is Outcome.BLOCKED:
            raise ApiError(400, IMAGEN_PROMPT_BLOCKED)
        if script.outcome is Outcome.EMPTY:
            return web.json_response({})
        withheld = {Outcome.FILTERED: asked.samples, Outcome.PARTIAL: script.filtered_count}
        filtered = min(asked.samples, withheld.get(script.outcome, 0))
        predictions = [
            await self._prediction(asked, index) for index in range(asked.samples - filtered)
        ]
        if asked.rai_reason:
            predictions += [{"raiFilteredReason": IMAGEN_FILTERED_REASON}] * filtered
        if asked.safety_attributes:
            predictions.append(safety_attributes("Positive Prompt"))
        return web.json_response({"predictions": predictions} if predictions else {})

    async def _prediction(self, asked: ImagenRequest, index: int) -> JSON:
        key = _key(asked.prompt, asked.seed, index, len(self.calls))
        data = await asyncio.to_thread(render, asked.size, asked.mime_type, key)
        out: JSON = {
            "mimeType": asked.mime_type,
            "bytesBase64Encoded": base64.b64encode(data).decode(),
        }
        if asked.safety_attributes:
            out.update(safety_attributes())
        return out


def _key(prompt: str, seed: int | None, index: int, call: int) -> str:
    """Return what an image's colours follow: the same seed gives the same image."""
    return f"{prompt}|{seed}|{index}" if seed is not None else f"{prompt}|call {call}|{index}"
