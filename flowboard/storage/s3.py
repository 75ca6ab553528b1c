"""Store objects in an S3-compatible bucket: AWS S3, Cloudflare R2, GCS interop, MinIO."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from flowboard.config import StorageSettings
from flowboard.storage.base import (
    FILE_CHUNK_BYTES,
    ObjectNotFound,
    StorageBackend,
    StorageError,
    StoredObject,
    read_file_chunks,
    validate_key,
)
from flowboard.storage.headers import content_disposition
from flowboard.tracing.storage import traced_put

_LOGGER = logging.getLogger(__name__)
SHA256_METADATA = "sha256"
# CopyObject, used to attach the digest after a multipart upload, stops at 5 GiB.
_MAX_COPY_BYTES = 5 * 1024**3
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
# Regions in which CreateBucket must not name a LocationConstraint.
_DEFAULT_REGIONS = frozenset({"", "auto", "us-east-1"})


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def _mapped_errors(action: str, key: str) -> Iterator[None]:
    """Turn botocore and aiohttp errors into the storage exception tree."""
    try:
        yield
    except ClientError as exc:
        code = _error_code(exc)
        if code in _NOT_FOUND:
            raise ObjectNotFound(f"no object under key {key!r}") from exc
        raise StorageError(f"s3 {action} failed for key {key!r}: {code or exc}") from exc
    except (BotoCoreError, aiohttp.ClientError) as exc:
        raise StorageError(f"s3 {action} failed for key {key!r}: {exc}") from exc


def _take(buffer: bytearray, size: int) -> bytes:
    """Remove and return the first `size` bytes of the buffer with a single copy."""
    with memoryview(buffer) as view:
        data = view[:size].tobytes()
    del buffer[:size]
    return data


@dataclass
class _Upload:
    """One put_stream in progress."""

    key: str
    """The validated object key."""
    content_type: str
    """The MIME type stored with the object."""
    hasher: Any = field(default_factory=hashlib.sha256)
    """The running SHA-256 of every byte sent so far."""
    size: int = 0
    """The number of bytes sent so far."""
    upload_id: str | None = None
    """The multipart upload id once the first full part was cut, else None."""
    parts: list[dict[str, Any]] = field(default_factory=list)
    """ETag and PartNumber of every uploaded part, in order."""

    def headers(self) -> dict[str, str]:
        """What the bucket answers a GET with: the type, and inline/attachment by it.

        S3 stores no X-Content-Type-Options or Content-Security-Policy per object: a CDN in
        front adds those (docs/deploy.md).
        """
        return {
            "ContentType": self.content_type,
            "ContentDisposition": content_disposition(self.key, self.content_type),
        }


class S3Storage:
    """A bucket reached through one aioboto3 client kept open for the service's life."""

    backend = StorageBackend.S3

    def __init__(self, settings: StorageSettings, session: aioboto3.Session | None = None) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self._session = session or aioboto3.Session()
        self._stack: contextlib.AsyncExitStack | None = None
        self._s3: Any = None

    async def __aenter__(self) -> S3Storage:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the S3 client."""
        if self._stack is not None:
            return
        cfg = self.settings
        config = AioConfig(
            signature_version="s3v4",
            # Custom endpoints (R2, GCS interop, MinIO) all accept path-style addressing.
            s3={"addressing_style": "path"} if cfg.s3_endpoint_url else {},
            # Default CRC checksums since botocore 1.36 are refused by some S3 look-alikes.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 3},
        )
        stack = contextlib.AsyncExitStack()
        self._s3 = await stack.enter_async_context(
            self._session.client(
                "s3",
                endpoint_url=cfg.s3_endpoint_url or None,
                region_name=cfg.s3_region or None,
                aws_access_key_id=cfg.s3_access_key_id or None,
                aws_secret_access_key=cfg.s3_secret_access_key or None,
                config=config,
            )
        )
        self._stack = stack
        _LOGGER.debug("s3 client open bucket=%s endpoint=%s", self.bucket, cfg.s3_endpoint_url)

    async def close(self) -> None:
        """Close the S3 client; safe to call twice."""
        stack, self._stack, self._s3 = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def _client(self) -> Any:
        if self._s3 is None:
            raise StorageError("S3Storage is not open")
        return self._s3

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist."""
        try:
            await self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            code = _error_code(exc)
            if code not in _NOT_FOUND:
                # Tokens scoped to objects (common on R2) may not inspect the bucket.
                _LOGGER.warning(
                    "cannot check bucket=%s (%s); assuming it exists", self.bucket, code
                )
                return
        except BotoCoreError as exc:
            raise StorageError(f"s3 head bucket {self.bucket!r} failed: {exc}") from exc
        await self._create_bucket()

    async def _create_bucket(self) -> None:
        region = self.settings.s3_region
        extra: dict[str, Any] = {}
        if region not in _DEFAULT_REGIONS:
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._client.create_bucket(Bucket=self.bucket, **extra)
        except ClientError as exc:
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageError(f"s3 create bucket {self.bucket!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"s3 create bucket {self.bucket!r} failed: {exc}") from exc
        _LOGGER.info("created bucket=%s", self.bucket)

    @traced_put
    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], content_type: str
    ) -> StoredObject:
        """Upload the chunks: one PUT below one part, else a multipart upload."""
        upload = _Upload(validate_key(key), content_type)
        try:
            tail = await self._send_full_parts(upload, chunks)
            if upload.upload_id is None:
                await self._put_single(upload, tail)
            else:
                await self._complete(upload, tail)
        except BaseException:
            if upload.upload_id is not None:
                await self._abort(upload)
            raise
        return StoredObject(
            backend=self.backend,
            bucket=self.bucket,
            key=upload.key,
            content_type=content_type,
            size=upload.size,
            sha256=upload.hasher.hexdigest(),
        )

    async def _send_full_parts(self, upload: _Upload, chunks: AsyncIterable[bytes]) -> bytes:
        """Upload every full part as it fills; return the bytes left over."""
        part_bytes = self.settings.s3_part_bytes
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            while len(buffer) >= part_bytes:
                await self._send_part(upload, _take(buffer, part_bytes))
        return bytes(buffer)

    async def _hash(self, upload: _Upload, data: bytes) -> None:
        await asyncio.to_thread(upload.hasher.update, data)
        upload.size += len(data)

    async def _send_part(self, upload: _Upload, data: bytes) -> None:
        """Upload one part, starting the multipart upload on the first."""
        if upload.upload_id is None:
            with _mapped_errors("create multipart upload", upload.key):
                created = await self._client.create_multipart_upload(
                    Bucket=self.bucket, Key=upload.key, **upload.headers()
                )
            upload.upload_id = str(created["UploadId"])
            _LOGGER.debug("multipart upload started key=%s upload=%s", upload.key, upload.upload_id)
        await self._hash(upload, data)
        number = len(upload.parts) + 1
        with _mapped_errors("upload part", upload.key):
            sent = await self._client.upload_part(
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.upload_id,
                PartNumber=number,
                Body=data,
            )
        upload.parts.append({"ETag": sent["ETag"], "PartNumber": number})

    async def _put_single(self, upload: _Upload, data: bytes) -> None:
        await self._hash(upload, data)
        with _mapped_errors("put", upload.key):
            await self._client.put_object(
                Bucket=self.bucket,
                Key=upload.key,
                Body=data,
                Metadata={SHA256_METADATA: upload.hasher.hexdigest()},
                **upload.headers(),
            )
        _LOGGER.debug("stored key=%s size=%d", upload.key, upload.size)

    async def _complete(self, upload: _Upload, tail: bytes) -> None:
        if tail:
            await self._send_part(upload, tail)
        with _mapped_errors("complete multipart upload", upload.key):
            await self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=upload.key,
                UploadId=upload.upload_id,
                MultipartUpload={"Parts": upload.parts},
            )
        # The upload is finished: nothing is left to abort from here on.
        upload.upload_id = None
        _LOGGER.debug("stored key=%s size=%d parts=%d", upload.key, upload.size, len(upload.parts))
        await self._attach_digest(upload)

    async def _attach_digest(self, upload: _Upload) -> None:
        """Copy the object onto itself to add the digest, known only after the last part."""
        if upload.size > _MAX_COPY_BYTES:
            _LOGGER.warning("key=%s is over 5 GiB; sha256 metadata not stored", upload.key)
            return
        try:
            with _mapped_errors("copy", upload.key):
                await self._client.copy_object(
                    Bucket=self.bucket,
                    Key=upload.key,
                    CopySource={"Bucket": self.bucket, "Key": upload.key},
                    MetadataDirective="REPLACE",  # replaces the headers too: set them again
                    Metadata={SHA256_METADATA: upload.hasher.hexdigest()},
                    **upload.headers(),
                )
        except StorageError as exc:
            # The object itself is complete; only the metadata copy is missing.
            _LOGGER.warning("key=%s sha256 metadata not stored: %s", upload.key, exc)

    async def _abort(self, upload: _Upload) -> None:
        try:
            with _mapped_errors("abort multipart upload", upload.key):
                await self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id
                )
        except StorageError as exc:
            _LOGGER.warning("key=%s upload=%s not aborted: %s", upload.key, upload.upload_id, exc)
            return
        _LOGGER.info(
            "aborted multipart upload key=%s upload=%s parts=%d",
            upload.key,
            upload.upload_id,
            len(upload.parts),
        )

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Stream a file into the bucket."""
        async with contextlib.aclosing(read_file_chunks(path, FILE_CHUNK_BYTES)) as chunks:
            return await self.put_stream(key, chunks, content_type)

    async def get_stream(self, key: str, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        """Yield the object's bytes as they arrive."""
        key = validate_key(key)
        with _mapped_errors("get", key):
            response = await self._client.get_object(Bucket=self.bucket, Key=key)
        body = response["Body"]
        try:
            while True:
                with _mapped_errors("read", key):
                    chunk = await body.read(chunk_size)
                if not chunk:
                    return
                yield chunk
        finally:
            # Drops the connection if the caller stopped early; a no-op once fully read.
            body.close()

    async def url_for(self, key: str) -> str:
        """Return the public URL, else a presigned GET URL, else endpoint/bucket/key."""
        key = validate_key(key)
        cfg = self.settings
        if cfg.public_base_url:
            return f"{cfg.public_base_url.rstrip('/')}/{key}"
        if cfg.s3_presign:
            with _mapped_errors("presign", key):
                url = await self._client.generate_presigned_url(
                    "get_object",
                    Params={
                        "Bucket": self.bucket,
                        "Key": key,
                        # Signed into the URL, so objects stored before the bucket kept
                        # a disposition answer with it too.
                        "ResponseContentDisposition": content_disposition(key),
                    },
                    ExpiresIn=cfg.s3_presign_seconds,
                )
            return str(url)
        return f"{str(self._client.meta.endpoint_url).rstrip('/')}/{self.bucket}/{key}"

    async def exists(self, key: str) -> bool:
        """Return whether the object exists."""
        key = validate_key(key)
        try:
            with _mapped_errors("head", key):
                await self._client.head_object(Bucket=self.bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    async def delete(self, key: str) -> None:
        """Delete the object; S3 treats a missing key as success."""
        key = validate_key(key)
        with _mapped_errors("delete", key):
            await self._client.delete_object(Bucket=self.bucket, Key=key)
