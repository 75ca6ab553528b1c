"""Store objects as files under a root directory."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TypeVar

from flowboard.storage.base import (
    FILE_CHUNK_BYTES,
    InsufficientStorage,
    InvalidKey,
    ObjectNotFound,
    StorageBackend,
    StorageError,
    StoredObject,
    read_file_chunks,
    read_handle_chunks,
    validate_key,
)
from flowboard.tracing.storage import traced_put

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")
# '~' is not a key character, so a temp file name can never be a stored key.
_TEMP_PREFIX = ".~"
_TEMP_SUFFIX = ".part"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Called in the writing thread before each chunk with the target and the chunk's size;
# raises InsufficientStorage to stop the write (storage/space.py).
Reserve = Callable[[Path, int], None]


class _AtomicWriter:
    """Write one file through a private thread, then move it into place."""

    def __init__(self, target: Path, reserve: Reserve | None = None) -> None:
        self.target = target
        self._reserve = reserve
        self.size = 0
        self._hash = hashlib.sha256()
        self._temp: Path | None = None
        self._handle: IO[bytes] | None = None
        # One worker runs every step in order, so a cleanup queued after a
        # cancelled write still waits for that write to finish.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowboard-storage")

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def _run(self, func: Callable[[], _T]) -> _T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, func)
        except OSError as exc:
            kind = InsufficientStorage if exc.errno in _DISK_FULL else StorageError
            raise kind(f"cannot write {self.target}: {exc}") from exc

    async def open(self) -> None:
        """Create the temp file beside the target."""
        await self._run(self._open)

    async def write(self, chunk: bytes) -> None:
        """Hash and append one chunk."""
        await self._run(lambda: self._write(chunk))

    async def commit(self) -> None:
        """Flush, sync and atomically rename the temp file onto the target."""
        await self._run(self._commit)
        # Only on success: a failed commit is followed by discard() on this executor.
        self._executor.shutdown(wait=False)

    async def discard(self) -> None:
        """Close and remove the temp file."""
        try:
            await self._run(self._discard)
        finally:
            self._executor.shutdown(wait=False)

    def _open(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f"{_TEMP_PREFIX}{self.target.name}.",
            suffix=_TEMP_SUFFIX,
            dir=self.target.parent,
        )
        self._temp = Path(name)
        self._handle = os.fdopen(fd, "wb")

    def _write(self, chunk: bytes) -> None:
        assert self._handle is not None
        if self._reserve is not None:
            self._reserve(self.target.parent, len(chunk))
        self._hash.update(chunk)
        self._handle.write(chunk)
        self.size += len(chunk)

    def _commit(self) -> None:
        assert self._handle is not None
        assert self._temp is not None
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._temp, self.target)

    def _discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()


class LocalStorage:
    """Files under `root`, served by the app's /media route."""

    backend = StorageBackend.LOCAL

    def __init__(
        self, root: Path, public_base_url: str = "", reserve: Reserve | None = None
    ) -> None:
        self.root = root.resolve()
        self.public_base_url = public_base_url
        self.reserve = reserve

    def path_for(self, key: str) -> Path:
        """Return the file path for a key, refusing any path that leaves the root."""
        resolved = (self.root / validate_key(key)).resolve()
        if not resolved.is_relative_to(self.root) or resolved == self.root:
            raise InvalidKey(f"key escapes the storage root: {key!r}")
        return resolved

    @traced_put
    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> StoredObject:
        """Stream chunks into a temp file, then rename it onto the key's path."""
        writer = _AtomicWriter(self.path_for(key), self.reserve)
        try:
            await writer.open()
            async for chunk in chunks:
                await writer.write(chunk)
            await writer.commit()
        except BaseException:
            await writer.discard()
            raise
        _LOGGER.debug("stored key=%s size=%d", key, writer.size)
        return StoredObject(
            backend=self.backend,
            bucket=None,
            key=key,
            content_type=content_type,
            size=writer.size,
            sha256=writer.sha256,
        )

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Stream a file into storage."""
        async with contextlib.aclosing(read_file_chunks(path, FILE_CHUNK_BYTES)) as chunks:
            return await self.put_stream(key, chunks, content_type)

    async def get_stream(self, key: str, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        """Yield the file's bytes."""
        path = self.path_for(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object under key {key!r}") from exc
        async with contextlib.aclosing(read_handle_chunks(handle, chunk_size)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def url_for(self, key: str) -> str:
        """Return the /media URL of the key, relative when no public base URL is set."""
        return f"{self.public_base_url.rstrip('/')}/media/{validate_key(key)}"

    async def exists(self, key: str) -> bool:
        """Return whether a file is stored under the key."""
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def delete(self, key: str) -> None:
        """Remove the key's file if present."""
        path = self.path_for(key)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(path.unlink)
