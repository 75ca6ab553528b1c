"""What every storage backend shares: the protocol, the stored-object record, key rules."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

from flowboard.errors import FlowboardError

MAX_KEY_LENGTH = 512
FILE_CHUNK_BYTES = 1 << 20
_KEY_CHARS = re.compile(r"[A-Za-z0-9/_.-]+")


class StorageBackend(StrEnum):
    """Where stored objects live."""

    LOCAL = "local"
    S3 = "s3"


@dataclass(frozen=True)
class StoredObject:
    """One object as written: where it lives and what it holds."""

    backend: StorageBackend
    """The backend that holds the object."""
    bucket: str | None
    """The S3 bucket, or None for local files."""
    key: str
    """The validated object key (a relative, '/'-separated path)."""
    content_type: str
    """The MIME type the object is served with."""
    size: int
    """The number of bytes written."""
    sha256: str
    """The hex SHA-256 of the bytes, computed while they streamed."""

    def to_json(self) -> dict[str, Any]:
        """Return the camelCase form used in API payloads."""
        return {
            "backend": self.backend.value,
            "bucket": self.bucket,
            "key": self.key,
            "contentType": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }


class StorageError(Exception):
    """A storage operation failed."""


class InsufficientStorage(StorageError, FlowboardError):
    """The disk is (nearly) full: the write was refused or failed with ENOSPC."""

    http_status, error_code = 507, "insufficient_storage"


class InvalidKey(StorageError):
    """A key breaks the key rules or escapes the storage root."""


class ObjectNotFound(StorageError):
    """No object is stored under the key."""


class Storage(Protocol):
    """Store, read and address media objects by key."""

    backend: StorageBackend

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> StoredObject:
        """Store the streamed bytes under the key, replacing any object there."""
        ...

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Store a file's bytes under the key, streaming it from disk."""
        ...

    # An async generator: declared without `async` so implementations may `yield`.
    def get_stream(self, key: str, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        """Yield the object's bytes; raise ObjectNotFound on first iteration if absent."""
        ...

    async def url_for(self, key: str) -> str:
        """Return a URL a client can fetch the object from."""
        ...

    async def exists(self, key: str) -> bool:
        """Return whether an object is stored under the key."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""
        ...


def validate_key(key: str) -> str:
    """Return the key if it is a safe relative path, else raise InvalidKey."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key must be 1..{MAX_KEY_LENGTH} characters: {key[:64]!r}")
    if not _KEY_CHARS.fullmatch(key):
        raise InvalidKey(f"key may only contain A-Z a-z 0-9 / _ . -: {key[:64]!r}")
    if key.startswith("/"):
        raise InvalidKey(f"key must not start with '/': {key[:64]!r}")
    # Empty and '.' segments would alias another key on disk ('a//b', 'a/./b' are 'a/b').
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKey(f"key has an empty, '.' or '..' segment: {key[:64]!r}")
    return key


async def read_file_chunks(
    path: Path, chunk_size: int = FILE_CHUNK_BYTES
) -> AsyncGenerator[bytes, None]:
    """Yield a file's bytes chunk by chunk, reading off the event loop."""
    handle = await asyncio.to_thread(path.open, "rb")
    async for chunk in read_handle_chunks(handle, chunk_size):
        yield chunk


async def read_handle_chunks(handle: IO[bytes], chunk_size: int) -> AsyncGenerator[bytes, None]:
    """Yield an open file's bytes off the event loop, closing it at the end."""
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        # Closing a read handle does not block; a sync close also works when the
        # generator is finalised without being awaited.
        handle.close()
