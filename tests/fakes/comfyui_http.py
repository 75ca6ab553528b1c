"""HTTP pieces of the fake ComfyUI: failure injection, uploads, /view and static answers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.comfyui_media import store_upload
from tests.fakes.comfyui_nodes import NODE_CLASSES, Dirs
from tests.fakes.comfyui_records import FailedRequest, Upload

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVER_ERROR = "500 Internal Server Error\n\nServer got itself in trouble"
SYSTEM_STATS = {
    "system": {
        "os": "posix",
        "ram_total": 68719476736,
        "ram_free": 34359738368,
        "comfyui_version": "0.3.64",
        "required_frontend_version": "1.27.10",
        "python_version": "3.11.9",
        "pytorch_version": "2.8.0+cu128",
        "embedded_python": False,
        "argv": ["main.py", "--listen"],
    },
    "devices": [
        {
            "name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync",
            "type": "cuda",
            "index": 0,
            "vram_total": 25757220864,
            "vram_free": 24000000000,
            "torch_vram_total": 0,
            "torch_vram_free": 0,
        }
    ],
}


@dataclass
class FailRule:
    """Fail the next `remaining` HTTP requests (whose path starts with `path`) with `status`."""

    remaining: int
    status: int
    path: str | None


@dataclass
class HttpFaults:
    """The armed failure rule, a random failure share, and the requests they failed."""

    rule: FailRule | None = None
    failed: list[FailedRequest] = field(default_factory=list)
    handled: list[tuple[str, str]] = field(default_factory=list)
    ratio: float = 0.0
    statuses: tuple[int, ...] = (503,)
    rng: random.Random = field(default_factory=random.Random)

    def pick(self, path: str) -> int | None:
        """The status to fail this request with, or None to handle it."""
        rule = self.rule
        matches = rule is not None and (path.startswith(rule.path) if rule.path else path != "/ws")
        if rule is not None and rule.remaining > 0 and matches:
            rule.remaining -= 1
            return rule.status
        if self.ratio and path != "/ws" and self.rng.random() < self.ratio:
            return self.rng.choice(self.statuses)
        return None


FAULTS_KEY = web.AppKey("fake_comfyui_faults", HttpFaults)
DIRS_KEY = web.AppKey("fake_comfyui_dirs", Dirs)
UPLOADS_KEY: web.AppKey[list[Upload]] = web.AppKey("fake_comfyui_uploads")


def route_path(request: web.Request) -> str:
    """Return the request path without a leading /api."""
    path = request.path
    return path[len("/api") :] if path.startswith("/api/") else path


@web.middleware
async def _inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a request with the armed failure status instead of handling it."""
    faults = request.app[FAULTS_KEY]
    path = route_path(request)
    status = faults.pick(path)
    if status is None:
        faults.handled.append((request.method, path))
        return await handler(request)
    faults.failed.append(FailedRequest(request.method, path, status))
    headers = {"Retry-After": "1"} if status == 429 else None
    return web.Response(status=status, text=f"{status}: fake failure", headers=headers)


def with_faults(faults: HttpFaults, *, client_max_size: int) -> web.Application:
    """Create the application with the failure-injection middleware."""
    app = web.Application(middlewares=[_inject_faults], client_max_size=client_max_size)
    app[FAULTS_KEY] = faults
    return app


async def json_object(request: web.Request) -> dict[str, Any]:
    """Return the JSON object body, or {} when the body is absent or not an object."""
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def add_file_routes(app: web.Application, dirs: Dirs, uploads: list[Upload]) -> None:
    """Add /upload/image, /view, /system_stats and /object_info (and their /api twins)."""
    app[DIRS_KEY] = dirs
    app[UPLOADS_KEY] = uploads
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/upload/image", upload_image),
        ("GET", "/view", view),
        ("GET", "/system_stats", system_stats),
        ("GET", "/object_info", object_info),
        ("GET", "/object_info/{node_class}", object_info),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, "/api" + path, handler)


async def upload_image(request: web.Request) -> web.StreamResponse:
    """Store a multipart `image` under input (or `type`) and `subfolder`; answer its name."""
    post = await request.post()
    image = post.get("image")
    if not isinstance(image, web.FileField) or not image.filename:
        return web.Response(status=400)
    kind = str(post.get("type") or "input")
    folder = request.app[DIRS_KEY].by_type(kind)
    if folder is None:
        return web.Response(status=400)
    subfolder = str(post.get("subfolder") or "")
    overwrite = str(post.get("overwrite") or "") in {"true", "1"}
    data = image.file.read()
    stored = await asyncio.to_thread(
        store_upload, folder, subfolder, image.filename, data, overwrite
    )
    if stored is None:
        return web.Response(status=400)
    name, duplicate = stored
    request.app[UPLOADS_KEY].append(
        Upload(image.filename, name, subfolder, kind, len(data), duplicate)
    )
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


async def view(request: web.Request) -> web.StreamResponse:
    """Serve a file by filename, subfolder and type (default output)."""
    query = request.query
    filename = query.get("filename")
    if not filename:
        return web.Response(status=404)
    folder = request.app[DIRS_KEY].by_type(query.get("type", "output"))
    subfolder = query.get("subfolder", "")
    if folder is None or filename.startswith("/") or ".." in filename or ".." in subfolder:
        return web.Response(status=400)
    path = folder / subfolder / filename
    if not path.is_file():
        return web.Response(status=404)
    return web.FileResponse(path, headers={"Content-Disposition": f'filename="{filename}"'})


async def system_stats(request: web.Request) -> web.StreamResponse:
    """Answer fixed system stats (a ComfyUI 0.3.64 on one CUDA GPU)."""
    return web.json_response(SYSTEM_STATS)


async def object_info(request: web.Request) -> web.StreamResponse:
    """Describe the known node classes, or one of them."""
    wanted = request.match_info.get("node_class")
    classes = [c for name, c in NODE_CLASSES.items() if wanted in (None, name)]
    return web.json_response({c.name: c.describe() for c in classes})
