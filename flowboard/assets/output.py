"""Put a provider's finished video into permanent storage, with a poster frame."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from flowboard.media.info import MediaInfo
from flowboard.media.poster import MediaError, extract_poster
from flowboard.media.probe import media_info
from flowboard.providers.base import (
    ErrorCode,
    PermanentProviderError,
    ReleasableOutput,
    VideoOutput,
)
from flowboard.storage.base import Storage, StoredObject

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredVideo:
    video: StoredObject
    poster: StoredObject | None
    url: str
    poster_url: str | None
    info: MediaInfo | None = None


async def _spool(output: VideoOutput, path: Path) -> None:
    """Write the stream to a local file, one chunk in memory at a time."""
    handle = await asyncio.to_thread(path.open, "wb")
    try:
        async for chunk in output.chunks():
            await asyncio.to_thread(handle.write, chunk)
    finally:
        await asyncio.to_thread(handle.close)


async def _info(video: Path, asset_id: str) -> MediaInfo | None:
    try:
        return await asyncio.to_thread(media_info, video)
    except MediaError as exc:
        _LOGGER.warning("video not probed: %s", exc, extra={"asset_id": asset_id})
        return None


async def _poster(video: Path, poster: Path, asset_id: str) -> bool:
    try:
        await asyncio.to_thread(extract_poster, video, poster)
    except MediaError as exc:
        _LOGGER.warning("no poster frame: %s", exc, extra={"asset_id": asset_id})
        return False
    return True


def new_prefix(asset_id: str) -> str:
    """An unguessable storage prefix for an asset's video and poster."""
    return f"videos/{asset_id}/{secrets.token_urlsafe(16)}"


async def store_video(
    storage: Storage, output: VideoOutput, asset_id: str, work_dir: Path, prefix: str
) -> StoredVideo:
    """Spool, extract a poster, upload both under unguessable keys, clean up."""
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    spool, poster = work_dir / f"{asset_id}.video", work_dir / f"{asset_id}.poster.jpg"
    try:
        await _spool(output, spool)
        if (await asyncio.to_thread(spool.stat)).st_size == 0:
            raise PermanentProviderError(ErrorCode.EMPTY_RESULT, "provider returned an empty file")
        stored = await storage.put_file(f"{prefix}.mp4", spool, output.content_type)
        info = await _info(spool, asset_id)
        poster_obj = None
        if await _poster(spool, poster, asset_id):
            poster_obj = await storage.put_file(f"{prefix}.jpg", poster, "image/jpeg")
    finally:
        for path in (spool, poster):
            await asyncio.to_thread(path.unlink, missing_ok=True)
    if isinstance(output, ReleasableOutput):  # only once our copy is safely stored
        await output.release()
    return StoredVideo(
        video=stored,
        poster=poster_obj,
        url=await storage.url_for(stored.key),
        poster_url=await storage.url_for(poster_obj.key) if poster_obj else None,
        info=info,
    )
