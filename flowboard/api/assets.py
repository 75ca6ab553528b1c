"""Input uploads, asset records, and local media files (with Range support)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.abc import AbstractStreamWriter
from multidict import CIMultiDict

from flowboard.api.bodies import json_answer, query_int
from flowboard.api.endpoint import Endpoint, Param
from flowboard.api.errors import ApiError, error_response
from flowboard.api.flows import PREFIX
from flowboard.api.principal import org_id
from flowboard.api.ranges import ByteRange, RangeNotSatisfiable, requested_range
from flowboard.assets.model import (
    AssetStatus,
    AssetType,
    GeneratedAsset,
    StorageInfo,
    Workflow,
    with_job_state,
)
from flowboard.ids import new_id, utcnow
from flowboard.keys import ASSETS, CANVAS, DECODER, ENGINE, SETTINGS, STORAGE
from flowboard.media.sniff import UnsupportedMedia, sniff_image
from flowboard.schema import ApiModel
from flowboard.storage.base import InvalidKey, ObjectNotFound
from flowboard.storage.headers import media_headers
from flowboard.storage.local import LocalStorage

ASSET_ID = Param("assetId", "path", required=True)


async def _read_upload(request: web.Request, limit: int) -> bytes:
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "unsupported_media_type", "upload must be multipart/form-data")
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == "file":
            data = bytearray()
            while chunk := await part.read_chunk(1 << 16):
                data += chunk
                if len(data) > limit:
                    raise ApiError(413, "payload_too_large", f"upload exceeds {limit} bytes")
            return bytes(data)
    raise ApiError(400, "missing_file", "multipart field 'file' is required")


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def upload_asset(request: web.Request) -> web.Response:
    data = await _read_upload(request, request.app[SETTINGS].server.max_upload_bytes)
    max_pixels = request.app[SETTINGS].server.max_image_pixels
    decode = partial(sniff_image, data, max_pixels)  # size read from the header first
    try:
        info = await asyncio.get_running_loop().run_in_executor(request.app[DECODER], decode)
    except UnsupportedMedia as exc:
        raise ApiError(415, "unsupported_media_type", str(exc)) from exc
    asset_id = new_id("asset")
    key = f"uploads/{asset_id}/{secrets.token_urlsafe(16)}.{info.extension}"
    storage = request.app[STORAGE]
    stored = await storage.put_stream(key, _once(data), info.content_type)
    now = utcnow()
    asset = GeneratedAsset(
        id=asset_id,
        org_id=org_id(request),
        type=AssetType.IMAGE,
        workflow=Workflow.UPLOAD,
        status=AssetStatus.COMPLETED,
        progress=100.0,
        url=await storage.url_for(key),
        storage=StorageInfo.model_validate(stored.to_json()),
        parameters={"width": info.width, "height": info.height},
        created_at=now,
        updated_at=now,
    )
    await request.app[ASSETS].insert(asset)
    return json_answer(asset, 201)


async def get_asset(request: web.Request) -> web.Response:
    asset = await request.app[ASSETS].get(org_id(request), request.match_info["assetId"])
    if asset is None:
        raise ApiError(404, "asset_not_found", f"asset {request.match_info['assetId']!r} not found")
    if asset.storage is not None:  # presigned URLs expire: hand out a fresh one
        url = await request.app[STORAGE].url_for(asset.storage.key)
        asset = asset.model_copy(update={"url": url})
    task = None
    if asset.execution_id and asset.node_id:  # its job's state is its task's
        task = await request.app[ENGINE].task(asset.execution_id, asset.node_id)
    return json_answer(with_job_state(asset, task))


class TakeList(ApiModel):
    """A node's finished outputs (takes), newest first; its output node shows the first."""

    items: list[GeneratedAsset]
    total: int
    offset: int
    limit: int


async def list_takes(request: web.Request) -> web.Response:
    org, flow_id = org_id(request), request.match_info["flowId"]
    await request.app[CANVAS].get(org, flow_id)  # 404 for a flow not in the organisation
    offset = query_int(request, "offset", 0, 0, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 200)
    items, total = await request.app[ASSETS].takes(
        org, flow_id, request.match_info["nodeId"], offset, limit
    )
    storage = request.app[STORAGE]
    fresh = [
        with_job_state(
            a.model_copy(update={"url": await storage.url_for(a.storage.key)}) if a.storage else a,
            None,  # a finished take: its job state is its end, not its task's progress
        )
        for a in items
    ]  # presigned URLs expire: fresh ones, as GET /assets/{id} hands out
    return json_answer(TakeList(items=fresh, total=total, offset=offset, limit=limit))


async def media(request: web.Request) -> web.StreamResponse:
    storage = request.app[STORAGE]
    if not isinstance(storage, LocalStorage):
        raise ApiError(404, "not_found", "media is served by the storage backend")
    try:
        path = storage.path_for(request.match_info["key"])
    except (InvalidKey, ObjectNotFound) as exc:
        raise ApiError(404, "not_found", "no such media") from exc
    if not path.is_file():
        raise ApiError(404, "not_found", "no such media")
    try:
        wanted = requested_range(request.headers.get(hdrs.RANGE), path.stat().st_size)
    except RangeNotSatisfiable as exc:
        headers = {"Content-Range": f"bytes */{exc.size}", **media_headers(path.name)}
        return error_response(416, "range_not_satisfiable", str(exc), headers=headers)
    return _RangedFile(path, wanted, headers=media_headers(path.name))


class _RangedFile(web.FileResponse):
    """aiohttp's file answer, shown only the one range we accept, in a form it reads right."""

    def __init__(self, path: Path, wanted: ByteRange | None, headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._wanted = wanted

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        headers = CIMultiDict(request.headers)
        headers.popall(hdrs.RANGE, None)
        if self._wanted is not None:
            headers[hdrs.RANGE] = self._wanted.header()
        return await super().prepare(request.clone(headers=headers))


def endpoints() -> list[Endpoint]:
    tag = "assets"
    return [
        Endpoint(
            "POST",
            f"{PREFIX}/assets",
            upload_asset,
            "Upload an input image (multipart field 'file')",
            tag,
            None,
            GeneratedAsset,
            201,
            content_type="application/json",
            needs_space=True,
        ),
        Endpoint(
            "GET",
            f"{PREFIX}/assets/{{assetId}}",
            get_asset,
            "Get an asset",
            tag,
            None,
            GeneratedAsset,
            params=(ASSET_ID,),
        ),
        Endpoint(
            "GET",
            f"{PREFIX}/flows/{{flowId}}/nodes/{{nodeId}}/takes",
            list_takes,
            "List a node's takes (finished outputs, newest first; earlier takes of re-runs)",
            tag,
            None,
            TakeList,
            params=(
                Param("flowId", "path", required=True),
                Param("nodeId", "path", required=True),
                Param("offset", "query", schema_type="integer"),
                Param("limit", "query", "at most 200", schema_type="integer"),
            ),
        ),
        Endpoint(
            "GET",
            "/media/{key:.+}",
            media,
            "A locally stored media file (Range supported)",
            tag,
            params=(Param("key", "path", required=True),),
            content_type="video/mp4",
            # A capability URL, like a presigned S3 one: the key is unguessable and
            # <video src> / <img src> cannot send an Authorization header.
            public=True,
            database=False,
        ),
    ]
