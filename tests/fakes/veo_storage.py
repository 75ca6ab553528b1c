"""The Cloud Storage JSON API objects that the fake Vertex service writes results to.

Served as Google documents it: `GET /download/storage/v1/b/{bucket}/o/{object}?alt=media`
(and `GET /storage/v1/b/{bucket}/o/{object}?alt=media`) stream the bytes, the same path
without `alt=media` answers the object's metadata, `DELETE /storage/v1/b/{bucket}/o/{object}`
answers 204. The object name is one URL-encoded path segment. A large object is a real clip
followed by an MP4 `free` box, streamed without ever being whole in memory.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.veo_media import ClipCache
from tests.fakes.veo_wire import JSON

_CHUNK = 1 << 20
_FREE_HEADER = 8  # 32-bit size, then b"free"


@dataclass(frozen=True)
class StoredObject:
    """One object: the clip for `aspect` and `seconds`, then `padding` bytes of `free` box."""

    aspect: str
    seconds: int
    padding: int = 0


def storage_error(status: int, message: str, reason: str) -> web.Response:
    """Render Cloud Storage's JSON error body (no `status` field, an `errors` list)."""
    error = {"code": status, "message": message}
    body = {"error": {**error, "errors": [{**error, "domain": "global", "reason": reason}]}}
    return web.json_response(body, status=status)


@dataclass
class FakeBucketStore:
    """gs:// URI → object, with the handlers of the JSON API's object routes.

    Records: `reads` and `deletes` (gs:// URIs, in order). `cut_after`: close the
    connection of the next media download after about that many bytes (then reset).
    """

    clips: ClipCache
    cut_after: int | None = None
    objects: dict[str, StoredObject] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)

    def put(self, uri: str, stored: StoredObject) -> None:
        """Write an object (a finished Vertex operation does)."""
        self.objects[uri] = stored

    async def read(self, uri: str) -> bytes:
        """Return a whole object (tests of small objects only); KeyError when unknown."""
        return b"".join([chunk async for chunk in self._chunks(self.objects[uri])])

    async def size(self, stored: StoredObject) -> int:
        clip = await self.clips.get(stored.aspect, stored.seconds)
        return len(clip) + (_FREE_HEADER + stored.padding if stored.padding else 0)

    async def _chunks(self, stored: StoredObject) -> AsyncIterator[bytes]:
        yield await self.clips.get(stored.aspect, stored.seconds)
        if not stored.padding:
            return
        yield struct.pack(">I4s", _FREE_HEADER + stored.padding, b"free")
        zeros, left = bytes(_CHUNK), stored.padding
        while left > 0:
            yield zeros[: min(left, _CHUNK)]
            left -= _CHUNK

    # Handlers ----------------------------------------------------------------------------

    def _lookup(self, request: web.Request) -> tuple[str, StoredObject] | web.Response:
        bucket, name = request.match_info["bucket"], request.match_info["object"]
        uri = f"gs://{bucket}/{name}"
        stored = self.objects.get(uri)
        if stored is None:
            return storage_error(404, f"No such object: {bucket}/{name}", "notFound")
        return uri, stored

    async def get(self, request: web.Request) -> web.StreamResponse:
        """Media download (`alt=media`, always on the /download path), else metadata."""
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        uri, stored = found
        size = await self.size(stored)
        media = request.query.get("alt") == "media"
        if not media and request.path.startswith("/download/"):
            return storage_error(400, "Download requests must use alt=media.", "invalid")
        if not media:
            bucket, _, name = uri.removeprefix("gs://").partition("/")
            meta: JSON = {"kind": "storage#object", "bucket": bucket, "name": name}
            return web.json_response({**meta, "size": str(size), "contentType": "video/mp4"})
        self.reads.append(uri)
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = size
        await response.prepare(request)
        cut, self.cut_after = self.cut_after, None
        sent = 0
        async for chunk in self._chunks(stored):
            await response.write(chunk)
            sent += len(chunk)
            if cut is not None and sent >= cut and request.transport is not None:
                request.transport.close()  # mid-body, as a dropped connection
                return response
        await response.write_eof()
        return response

    async def delete(self, request: web.Request) -> web.Response:
        """Delete the object: 204 with no body."""
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        uri, _ = found
        del self.objects[uri]
        self.deletes.append(uri)
        return web.Response(status=204)
