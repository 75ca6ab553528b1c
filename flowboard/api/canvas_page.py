"""GET / and /web/*: the canvas page, static files shipped inside the package.

No build step: `flowboard/web/` holds plain ES modules, CSS and one HTML page. Every
answer carries a strict Content-Security-Policy (scripts only from this origin, no
inline script or style attribute) and revalidating cache headers: the file names are
not versioned, so a browser keeps a copy but asks (ETag / Last-Modified → 304) before
using it.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from flowboard.api.endpoint import Endpoint, Param
from flowboard.api.errors import ApiError
from flowboard.config import StorageSettings
from flowboard.keys import SETTINGS

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
SERVED_SUFFIXES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def media_sources(storage: StorageSettings) -> str:
    """Where `<img>` and `<video>` may load from: this origin, plus the storage's."""
    sources = ["'self'"]
    for url in (storage.public_base_url, storage.s3_endpoint_url):
        origin = _origin(url) if url else None
        if origin:
            sources.append(origin)
    if storage.backend == "s3" and not storage.s3_endpoint_url and not storage.public_base_url:
        sources.append("https:")  # presigned URLs of the provider's own S3 hosts
    return " ".join(dict.fromkeys(sources))


def content_security_policy(storage: StorageSettings) -> str:
    media = media_sources(storage)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {media} blob: data:",
            f"media-src {media}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _headers(request: web.Request, content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Cache-Control": "no-cache",  # keep a copy, revalidate it (ETag) before use
        "Content-Security-Policy": content_security_policy(request.app[SETTINGS].storage),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _file(name: str) -> Path:
    """The shipped file `name` (a plain name, one level deep), else a 404."""
    path = (WEB_ROOT / name).resolve()
    if path.parent != WEB_ROOT or path.suffix not in SERVED_SUFFIXES or not path.is_file():
        raise ApiError(404, "not_found", "no such file")
    return path


async def index(request: web.Request) -> web.StreamResponse:
    path = WEB_ROOT / "index.html"
    return web.FileResponse(path, headers=_headers(request, "text/html; charset=utf-8"))


async def static(request: web.Request) -> web.StreamResponse:
    path = _file(request.match_info["name"])
    content_type = SERVED_SUFFIXES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or ""
    return web.FileResponse(path, headers=_headers(request, f"{content_type}; charset=utf-8"))


def endpoints() -> list[Endpoint]:
    """The page's routes: public (the page asks for a token itself), not in OpenAPI."""
    tag = "canvas-page"
    return [
        Endpoint(
            "GET",
            "/",
            index,
            "The canvas page",
            tag,
            public=True,
            database=False,
            content_type="text/html",
        ),
        Endpoint(
            "GET",
            "/web/{name}",
            static,
            "A file of the canvas page",
            tag,
            params=(Param("name", "path", required=True),),
            public=True,
            database=False,
            content_type="text/javascript",
        ),
    ]
