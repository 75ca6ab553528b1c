"""Vertex results written to Cloud Storage, read back through the JSON API, streamed.

`files.download` is Gemini-only; a `gs://bucket/object` result is read with the same
OAuth credentials from `GET /download/storage/v1/b/{bucket}/o/{object}?alt=media` and
handed on chunk by chunk, so a 1080p video is never whole in memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp

from flowboard.providers.base import (
    ErrorCode,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from flowboard.providers.veo_client import VeoClient
from flowboard.providers.veo_errors import CALL_ERRORS, provider_error

_LOGGER = logging.getLogger(__name__)

_CHUNK = 1 << 20
_RETRYABLE = frozenset({408, 429})
_GONE = frozenset({404, 410})
_RELEASE_ERRORS: tuple[type[BaseException], ...] = (*CALL_ERRORS, ProviderError)


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """Split `gs://bucket/path/to/object` into bucket and object name."""
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not uri.startswith("gs://") or not bucket or not name:
        raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, f"Veo gave a bad gs:// URI {uri!r}")
    return bucket, name


def _object_path(uri: str) -> str:
    bucket, name = parse_gs_uri(uri)
    # The object name is one path segment: its slashes are escaped too.
    return f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"


async def _error_message(response: aiohttp.ClientResponse) -> str:
    """Return the message of Google's JSON error body, or the status line."""
    text = (await response.content.read(16_384)).decode(errors="replace")
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.reason or "no message"
    return str(message)


def _status_error(status: int, message: str, uri: str) -> ProviderError:
    text = f"Veo download of {uri} failed: HTTP {status}: {message}"
    if status >= 500 or status in _RETRYABLE:
        return TransientProviderError(text)
    if status in _GONE:  # the service keeps results for a while only
        return PermanentProviderError(ErrorCode.LOST_BY_PROVIDER, text)
    return PermanentProviderError(ErrorCode.PROVIDER_ERROR, text)


@dataclass
class GcsOutput:
    """A finished video in Cloud Storage; satisfies `VideoOutput` and `ReleasableOutput`.

    client: the provider's client (session, credentials, endpoint).
    uri: the `gs://` URI Vertex reported.
    delete_after: remove the object once our copy is stored (`delete_gcs_output`).
    extra: log fields of the job (operation, job id).
    """

    client: VeoClient
    uri: str
    content_type: str
    delete_after: bool
    timeout_seconds: float
    extra: dict[str, object] = field(default_factory=dict)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the object's bytes as they arrive; raise ProviderError on any failure."""
        url = f"{self.client.storage_base()}/download{_object_path(self.uri)}?alt=media"
        # A whole 1080p video may take long: bound each read and the connect, not the total.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout_seconds, sock_read=self.timeout_seconds
        )
        received = 0
        try:
            headers = await self.client.auth_headers()
            async with self.client.http().get(url, headers=headers, timeout=timeout) as response:
                if response.status >= 400:
                    message = await _error_message(response)
                    raise _status_error(response.status, message, self.uri)
                expected = response.content_length
                async for chunk in response.content.iter_chunked(_CHUNK):
                    received += len(chunk)
                    yield chunk
        except CALL_ERRORS as error:
            raise provider_error(error, f"download of {self.uri}") from error
        if expected is not None and received != expected:
            message = f"Veo download of {self.uri} ended after {received} of {expected} bytes"
            raise TransientProviderError(message)
        _LOGGER.info("veo video read from cloud storage", extra={**self.extra, "bytes": received})

    async def release(self) -> None:
        """Delete the object when configured; best effort, never raises."""
        if not self.delete_after:
            return
        url = f"{self.client.storage_base()}{_object_path(self.uri)}"
        extra = {**self.extra, "uri": self.uri}
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        try:
            headers = await self.client.auth_headers()
            async with self.client.http().delete(url, headers=headers, timeout=timeout) as reply:
                status = reply.status
                message = await _error_message(reply) if status >= 400 else ""
        except _RELEASE_ERRORS as error:
            _LOGGER.warning("veo output not deleted: %r", error, extra=extra)
            return
        if status < 300 or status in _GONE:
            _LOGGER.info("veo output deleted from cloud storage", extra=extra)
        else:
            _LOGGER.warning(
                "veo output not deleted: HTTP %d: %s",
                status,
                message,
                extra=extra,
            )
