"""A local fake of Google's Veo video API that the unmodified google-genai SDK can talk to."""

from __future__ import annotations

import asyncio
import base64
import random
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes.veo_media import ClipCache
from tests.fakes.veo_storage import FakeBucketStore, StoredObject, storage_error
from tests.fakes.veo_wire import JSON, ApiError, injected_message, json_body, validate_start
from tests.servers._process import free_port

_GEMINI_HOST = "https://generativelanguage.googleapis.com"
_TYPES = "type.googleapis.com"
_GEMINI_TYPE = f"{_TYPES}/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
_VERTEX_TYPE = f"{_TYPES}/cloud.ai.large_models.vision.GenerateVideoResponse"
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

    START = "start"
    POLL = "poll"
    CANCEL = "cancel"
    DOWNLOAD = "download"
    MEDIA = "media"  # Cloud Storage JSON API object read (Vertex results in a bucket)
    DELETE = "delete"  # Cloud Storage JSON API object delete


class Outcome(StrEnum):
    """How an operation ends."""

    SUCCESS = "success"  # as the real service: Gemini → URI; Vertex → inline unless storageUri
    URI = "uri"  # Gemini: https download URI; Vertex: gcsUri
    INLINE = "inline"  # Gemini: encodedVideo; Vertex: bytesBase64Encoded
    ERROR = "error"  # done with a google.rpc.Status in "error"
    FILTERED = "filtered"  # raiMediaFilteredCount/Reasons and no samples
    PARTIAL = "partial"  # `filtered_count` of the samples withheld (with reasons), the rest served
    EMPTY = "empty"  # done, a response with neither samples nor filter info
    NEVER = "never"  # never done


@dataclass(frozen=True)
class Script:
    """The fate of one operation."""

    outcome: Outcome = Outcome.SUCCESS
    polls_until_done: int = 1
    """Polls answered "not done" before the one that reports done (0: the first is done)."""
    seconds_until_done: float = 0.0
    """Also wait this long after the start before reporting done."""
    error_code: int = 13
    error_message: str = "Video generation failed due to an internal error."
    object_padding: int = 0
    """Vertex to a bucket: grow the object by this many bytes (an MP4 `free` box)."""
    filtered_count: int = 1
    filtered_reasons: tuple[str, ...] = (
        "Your video could not be generated because it violates the usage guidelines.",
    )


@dataclass(frozen=True)
class RequestRecord:
    """One request as it arrived, before any injected misbehaviour."""

    route: Route
    mode: Mode
    method: str
    path: str
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class StartRecord:
    """One accepted start request."""

    operation: str
    mode: Mode
    model: str
    body: JSON  # exactly as the client sent it


@dataclass
class _Fault:
    """Misbehave on the next `remaining` requests of `route` (any when None)."""

    remaining: int
    route: Route | None
    status: int  # 0: drop the connection; 200: a 200 whose body is not JSON (a proxy's page)


@dataclass
class _Operation:
    name: str
    mode: Mode
    script: Script
    aspect: str
    seconds: int
    samples: int
    storage_uri: str | None
    started_at: float = field(default_factory=time.monotonic)
    polls: int = 0
    cancelled: bool = False


class FakeVeo:
    """Serve Veo's Gemini (v1beta) and Vertex AI (v1beta1) wire protocol on 127.0.0.1.

    Behaviour, set from tests through plain attributes and methods:
    - `default_script`: the `Script` of every started operation unless `enqueue()` queued one.
    - `enqueue(*scripts)`: scripts for the next operations, in start order.
    - `fail_next(count, status=503, route=None)`: answer the next `count` requests (of
      `route`, any route when None) with Google's error JSON for `status` (429, 500, 503 …).
    - `fail_randomly(ratio, status=503, seed=0, route=None)`: fail that share of requests,
      drawn from a seeded generator; ratio 0 turns it off.
    - `delay` seconds (only for `delay_route` when set) before every answer, drop or failure.
    - `garble_next(count, route=None)`: answer 200 with an HTML page instead of JSON.
    - `drop_next(count, route=None)`: close the connection without answering. Clients
      resend: aiohttp resends a dropped GET (Gemini poll, download) once, and google-genai
      without `retry_options` resends any dropped request, POST too, after 1-10 s.
    - `forget()`: simulate a restart: every known operation and file answers 404 NOT_FOUND.
    Credentials: `api_key` (x-goog-api-key or ?key=; missing → 403, wrong → 400) for Gemini
    and express mode, `token` (Authorization: Bearer) for Vertex (wrong → 401).
    Records: `requests` (every request with route and arrival time), `starts` (accepted
    start bodies), `polls` (answered polls per operation name), `cancels` (operation names),
    `clips.encodes` (real encodes; clips are cached per aspect ratio and duration),
    `bucket` (objects Vertex wrote for a `storageUri`, read and deleted through the Cloud
    Storage JSON API with the bearer token; `bucket.reads`, `bucket.deletes`).
    """

    def __init__(
        self, *, api_key: str = "fake-api-key", token: str = "fake-token", port: int | None = None
    ) -> None:
        self.api_key, self.token = api_key, token
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.default_script = Script()
        self.delay = 0.0
        self.delay_route: Route | None = None
        self.requests: list[RequestRecord] = []
        self.starts: list[StartRecord] = []
        self.polls: Counter[str] = Counter()
        self.cancels: list[str] = []
        self.clips = ClipCache()
        self._queued: deque[Script] = deque()
        self._faults: list[_Fault] = []
        self._random: tuple[float, tuple[int, ...], Route | None, random.Random] | None = None
        self._operations: dict[str, _Operation] = {}
        self._files: dict[str, tuple[str, int]] = {}
        self.bucket = FakeBucketStore(self.clips)
        self._runner: web.AppRunner | None = None

    # Test controls --------------------------------------------------------------------

    def enqueue(self, *scripts: Script) -> None:
        """Use `scripts` for the next started operations, one each."""
        self._queued.extend(scripts)

    def fail_next(self, count: int, status: int = 503, route: Route | None = None) -> None:
        """Answer the next `count` requests (of `route`) with an error `status`."""
        self._faults.append(_Fault(count, route, status))

    def drop_next(self, count: int, route: Route | None = None) -> None:
        """Close the connection of the next `count` requests (of `route`) unanswered."""
        self._faults.append(_Fault(count, route, 0))

    def garble_next(self, count: int, route: Route | None = None) -> None:
        """Answer the next `count` requests (of `route`) 200 with an HTML page, not JSON."""
        self._faults.append(_Fault(count, route, 200))

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

    def forget(self) -> None:
        """Lose every operation and file, as a restarted service would (records stay)."""
        self._operations.clear()
        self._files.clear()
        self._queued.clear()

    def count(self, route: Route | None = None, mode: Mode | None = None) -> int:
        """Return how many requests arrived (for `route` / `mode` when given)."""
        matches = (route in (None, r.route) and mode in (None, r.mode) for r in self.requests)
        return sum(matches)

    def arrival_times(self, route: Route | None = None) -> list[float]:
        """Return the monotonic arrival times of requests (for `route`)."""
        return [r.at for r in self.requests if route in (None, r.route)]

    async def gcs_object(self, uri: str) -> bytes:
        """Return the mp4 behind a Vertex `gs://` result (KeyError when unknown)."""
        return await self.bucket.read(uri)

    # Lifecycle ------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on 127.0.0.1:`port`."""
        app = web.Application(middlewares=[self._middleware])
        model, op = f"{{model:{_SEG}}}", f"{{op:{_SEG}}}"
        gemini = f"/v1beta/models/{model}"
        routes: list[tuple[str, str, Handler, str]] = [
            ("POST", f"{gemini}:predictLongRunning", self._start, "gemini-start"),
            ("GET", f"{gemini}/operations/{op}", self._gemini_poll, "gemini-poll"),
            ("POST", f"{gemini}/operations/{op}:cancel", self._cancel, "gemini-cancel"),
            ("GET", f"/v1beta/files/{{file:{_SEG}}}:download", self._download, "gemini-download"),
        ]
        for mode, prefix in (("vertex", _VERTEX_MODELS), ("express", _EXPRESS_MODELS)):
            routes += [
                ("POST", f"{prefix}/{model}:predictLongRunning", self._start, f"{mode}-start"),
                ("POST", f"{prefix}/{model}:fetchPredictOperation", self._vertex_poll,
                 f"{mode}-poll"),
                ("POST", f"{prefix}/{model}/operations/{op}:cancel", self._cancel,
                 f"{mode}-cancel"),
            ]  # fmt: skip
        objects = "/storage/v1/b/{bucket}/o/{object:.+}"
        routes += [
            ("GET", f"/download{objects}", self.bucket.get, "vertex-media-download"),
            ("GET", objects, self.bucket.get, "vertex-media-json"),
            ("DELETE", objects, self.bucket.delete, "vertex-delete-json"),
        ]
        for method, path, handler, name in routes:
            app.router.add_route(method, path, handler, name=name)
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
        mode_name, route_name = name.split("-")[:2]
        mode, route = Mode(mode_name), Route(route_name)
        arrival = RequestRecord(route, mode, request.method, request.path, time.monotonic())
        self.requests.append(arrival)
        if self.delay > 0 and self.delay_route in (None, route):
            await asyncio.sleep(self.delay)
        status = self._injected_status(route)
        if status == 0:
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        if status == 200:
            return web.Response(text="<html><body>Service Unavailable</body></html>")
        if route in (Route.MEDIA, Route.DELETE):
            return await self._storage(request, handler, status)
        try:
            self._authorize(request, mode)
            if status is not None:
                raise ApiError(status, injected_message(status))
            return await handler(request)
        except ApiError as error:
            return error.response()

    async def _storage(
        self, request: web.Request, handler: Handler, status: int | None
    ) -> web.StreamResponse:
        """Cloud Storage: its own error body; OAuth bearer token only (an API key cannot)."""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return storage_error(401, "Invalid Credentials", "authError")
        if status is not None:
            return storage_error(status, injected_message(status), "backendError")
        return await handler(request)

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

    # Handlers -------------------------------------------------------------------------

    async def _start(self, request: web.Request) -> web.Response:
        mode = Mode(str(request.match_info.route.name).split("-")[0])
        model = request.match_info["model"]
        if not model.startswith("veo-"):
            raise ApiError(404, f"models/{model} is not found for predictLongRunning.")
        body = await json_body(request)
        aspect, seconds, samples, storage_uri = validate_start(body)
        op_id = secrets.token_hex(6) if mode is Mode.GEMINI else str(uuid.uuid4())
        if mode is Mode.VERTEX:
            m = request.match_info
            name = f"projects/{m['project']}/locations/{m['location']}/publishers/google/"
        else:
            name = "publishers/google/" if mode is Mode.EXPRESS else ""
        name += f"models/{model}/operations/{op_id}"
        script = self._queued.popleft() if self._queued else self.default_script
        op = _Operation(name, mode, script, aspect, seconds, samples, storage_uri)
        self._operations[name] = op
        self.starts.append(StartRecord(name, mode, model, body))
        return web.json_response({"name": name})

    async def _gemini_poll(self, request: web.Request) -> web.Response:
        m = request.match_info
        return web.json_response(await self._poll(f"models/{m['model']}/operations/{m['op']}"))

    async def _vertex_poll(self, request: web.Request) -> web.Response:
        name = (await json_body(request)).get("operationName")
        resource = request.path.removeprefix("/v1beta1/").removesuffix(":fetchPredictOperation")
        if not isinstance(name, str) or not name.startswith(f"{resource}/operations/"):
            raise ApiError(400, "operationName must name an operation of this model.")
        return web.json_response(await self._poll(name))

    async def _poll(self, name: str) -> JSON:
        op = self._lookup(name)
        op.polls += 1
        self.polls[name] += 1
        if op.cancelled:
            return _failed(name, 1, "Operation was cancelled.")
        if not self._is_done(op):
            return {"name": name}
        if op.script.outcome is Outcome.ERROR:
            return _failed(name, op.script.error_code, op.script.error_message)
        return {"name": name, "done": True, "response": await self._result(op)}

    async def _cancel(self, request: web.Request) -> web.Response:
        name = request.path.split("/", 2)[2].removesuffix(":cancel")
        op = self._lookup(name)
        self.cancels.append(name)
        if not self._is_done(op):
            op.cancelled = True
        return web.json_response({})

    async def _download(self, request: web.Request) -> web.Response:
        if request.query.get("alt") != "media":
            raise ApiError(400, "Only alt=media downloads are supported for generated files.")
        key = self._files.get(request.match_info["file"])
        if key is None:
            raise ApiError(404, "Requested entity was not found.")
        return web.Response(body=await self.clips.get(*key), content_type="video/mp4")

    # Results --------------------------------------------------------------------------

    def _lookup(self, name: str) -> _Operation:
        op = self._operations.get(name)
        if op is None:
            raise ApiError(404, f"Operation {name} was not found.")
        return op

    @staticmethod
    def _is_done(op: _Operation) -> bool:
        if op.cancelled:
            return True
        if op.script.outcome is Outcome.NEVER:
            return False
        waited = time.monotonic() - op.started_at
        return op.polls > op.script.polls_until_done and waited >= op.script.seconds_until_done

    async def _result(self, op: _Operation) -> JSON:
        script, gemini = op.script, op.mode is Mode.GEMINI
        out: JSON = {}
        if script.outcome is Outcome.FILTERED:
            count, reasons = script.filtered_count, list(script.filtered_reasons)
            out = {"raiMediaFilteredCount": count, "raiMediaFilteredReasons": reasons}
        elif script.outcome is not Outcome.EMPTY:
            withheld = script.filtered_count if script.outcome is Outcome.PARTIAL else 0
            served = max(0, op.samples - withheld)
            samples = [await self._sample(op, index) for index in range(served)]
            out = {"generatedSamples": samples} if gemini else {"videos": samples}
            if withheld:
                reasons = list(script.filtered_reasons)
                out |= {"raiMediaFilteredCount": withheld, "raiMediaFilteredReasons": reasons}
        if gemini:
            return {"@type": _GEMINI_TYPE, "generateVideoResponse": out}
        return {"@type": _VERTEX_TYPE, **out}

    async def _sample(self, op: _Operation, index: int) -> JSON:
        outcome = op.script.outcome
        if outcome in (Outcome.SUCCESS, Outcome.PARTIAL):
            by_uri = op.mode is Mode.GEMINI or op.storage_uri is not None
            outcome = Outcome.URI if by_uri else Outcome.INLINE
        if outcome is Outcome.INLINE:
            data = base64.b64encode(await self.clips.get(op.aspect, op.seconds)).decode()
            if op.mode is Mode.GEMINI:
                return {"video": {"encodedVideo": data, "encoding": "video/mp4"}}
            return {"bytesBase64Encoded": data, "mimeType": "video/mp4"}
        if op.mode is not Mode.GEMINI:
            folder = (op.storage_uri or "gs://fake-veo-output").rstrip("/")
            uri = f"{folder}/{op.name.rsplit('/', 1)[1]}/sample_{index}.mp4"
            self.bucket.put(uri, StoredObject(op.aspect, op.seconds, op.script.object_padding))
            return {"gcsUri": uri, "mimeType": "video/mp4"}
        file_id = f"{op.name.rsplit('/', 1)[1]}v{index}"  # the SDK wants [a-z0-9]+
        self._files[file_id] = (op.aspect, op.seconds)
        return {"video": {"uri": f"{_GEMINI_HOST}/v1beta/files/{file_id}:download?alt=media"}}


def _failed(name: str, code: int, message: str) -> JSON:
    """Render a finished operation whose error is a google.rpc.Status."""
    return {"name": name, "done": True, "error": {"code": code, "message": message}}
