"""The contract between the video processor and a generation provider.

Polling providers (Veo) and push providers (ComfyUI's websocket) look the same from
here: `start()` hands back an operation id that the caller persists at once, and
`follow()` waits for the end, reporting progress as it goes. After a restart the
caller calls `follow()` again with the persisted id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class ErrorCode(StrEnum):
    """Stable codes recorded on failed assets and tasks."""

    INVALID_REQUEST = "invalid_request"
    PROVIDER_ERROR = "provider_error"
    CONTENT_FILTERED = "content_filtered"
    EMPTY_RESULT = "empty_result"
    LOST_BY_PROVIDER = "lost_by_provider"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    UNAVAILABLE = "provider_unavailable"
    INPUT_MISSING = "input_missing"
    UPSTREAM_FAILED = "upstream_failed"
    STORAGE_ERROR = "storage_error"
    INTERNAL = "internal"


class ProviderError(Exception):
    """A provider call failed; `code` is one of ErrorCode."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TransientProviderError(ProviderError):
    """Worth retrying: 429, 5xx, a dropped connection, a timeout of one call."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.UNAVAILABLE) -> None:
        super().__init__(code, message)


class PermanentProviderError(ProviderError):
    """Retrying cannot help: the job ends FAILED with this code and message."""


class InvalidVideoRequest(PermanentProviderError):
    """The parameters are refused before any provider call (a 422 for the caller)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, message)


@dataclass(frozen=True)
class InputImage:
    """An image passed to the provider (first or last frame)."""

    data: bytes
    content_type: str


@dataclass(frozen=True)
class VideoRequest:
    """Everything a provider needs to generate one video.

    job_id: the GeneratedAsset id; stable across restarts and retries, usable as a
        client-side idempotency key where the provider accepts one.
    resumed: the job began in an earlier process, so the provider may already hold it
        (a provider that dedupes by job id checks before submitting again).
    """

    job_id: str
    prompt: str
    duration_seconds: int
    aspect_ratio: str
    resolution: str
    negative_prompt: str | None = None
    model: str | None = None
    fps: int | None = None
    seed: int | None = None
    person_generation: str | None = None
    generate_audio: bool | None = None
    enhance_prompt: bool | None = None
    workflow: str | None = None
    first_frame: InputImage | None = None
    last_frame: InputImage | None = None
    resumed: bool = False


@dataclass(frozen=True)
class Progress:
    """A progress report: percent 0-100 (never 100 before the end); estimated if guessed."""

    percent: float
    estimated: bool = False
    message: str = ""


ProgressCallback = Callable[[Progress], Coroutine[Any, Any, None]]


class VideoOutput(Protocol):
    """A finished video, read as a stream of chunks (never all in memory twice)."""

    @property
    def content_type(self) -> str: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True)
class BytesOutput:
    """A video the provider returned inline."""

    data: bytes
    content_type: str = "video/mp4"
    chunk_size: int = 1 << 20

    async def chunks(self) -> AsyncIterator[bytes]:
        view = memoryview(self.data)
        for start in range(0, len(view), self.chunk_size):
            yield bytes(view[start : start + self.chunk_size])


@runtime_checkable
class ReleasableOutput(Protocol):
    """An output whose provider-side copy may go once ours is stored (e.g. a bucket object)."""

    async def release(self) -> None:
        """Drop the provider's copy; best effort, never raises."""


class VideoProvider(Protocol):
    """A source of generated videos."""

    name: str

    @property
    def deadline_seconds(self) -> float: ...

    def validate(self, request: VideoRequest) -> None:
        """Raise InvalidVideoRequest for parameters the provider would refuse."""

    async def start(self, request: VideoRequest) -> str:
        """Submit the job; return the provider's operation id."""

    async def follow(
        self, operation_id: str, request: VideoRequest, report: ProgressCallback
    ) -> VideoOutput:
        """Wait for the job to end; return its video or raise ProviderError."""

    async def cancel(self, operation_id: str) -> None:
        """Ask the provider to stop the job (best effort)."""

    async def close(self) -> None:
        """Release clients and connections."""
