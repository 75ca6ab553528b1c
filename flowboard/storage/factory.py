"""Open the storage backend the settings name."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from flowboard.config import Settings
from flowboard.storage.base import Storage, StorageBackend
from flowboard.storage.local import LocalStorage, Reserve

_LOGGER = logging.getLogger(__name__)


@asynccontextmanager
async def open_storage(
    settings: Settings, reserve: Reserve | None = None
) -> AsyncIterator[Storage]:
    """Yield the configured storage, open for the block and closed after it.

    `reserve` (local files) may refuse each chunk before it is written (disk space).
    """
    cfg = settings.storage
    if StorageBackend(cfg.backend) is StorageBackend.S3:
        from flowboard.storage.s3 import S3Storage  # aioboto3 only when configured

        async with S3Storage(cfg) as storage:
            await storage.ensure_bucket()
            _LOGGER.info("storage backend=s3 bucket=%s", storage.bucket)
            yield storage
        return
    root = settings.data_path / "media"
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    _LOGGER.info("storage backend=local root=%s", root)
    yield LocalStorage(root, cfg.public_base_url, reserve)
