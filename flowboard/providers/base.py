"""The contract between the generation processor and a generation provider.

Polling providers (Veo) and push providers (ComfyUI's websocket) look the same from
here: `start()` hands back an operation id that the caller persists at once, and
`follow()` waits for the end, reporting progress as it goes. After a restart the
caller calls `follow()` again with the persisted id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from flowboard.errors import CodedError, ErrorCode, InvalidRequest

__all__ = ["ErrorCode"]  # re-exported: providers have always imported it from here


class ProviderError(CodedError):
    """A provider call failed; `code` is one of ErrorCode."""


class TransientProviderError(ProviderError):
    """Worth retrying: 429, 5xx, a dropped connection, a timeout of one call."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.UNAVAILABLE) -> None:
        super().__init__(code, message)


class PermanentProviderError(ProviderError):
    """Retrying cannot help: the job ends FAILED with this code and message."""


class InvalidProviderRequest(PermanentProviderError, InvalidRequest):
    """The parameters are refused before any provider call (a 422 for the caller)."""

    def __init__(self, message: str) -> None:
        CodedError.__init__(self, ErrorCode.INVALID_REQUEST, message)


class InvalidVideoRequest(InvalidProviderRequest):
    """A video request's parameters are refused (kept: video providers raise it)."""


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
    fps: float | None = None  # fractional rates allowed (23.976, 29.97)
    seed: int | None = None
    person_generation: str | None = None
    generate_audio: bool | None = None
    enhance_prompt: bool | None = None
    workflow: str | None = None
    first_frame: InputImage | None = None
    last_frame: InputImage | None = None
    resumed: bool = False
    # How many videos to make from it (1-4); a provider that makes several in one job
    # returns `Variants` from follow(), one that cannot refuses more than 1 in validate().
    variants: int = 1


@dataclass(frozen=True)
class Progress:
    """A progress report: percent 0-100 (never 100 before the end); estimated if guessed."""

    percent: float
    estimated: bool = False
    message: str = ""


ProgressCallback = Callable[[Progress], Coroutine[Any, Any, None]]


class MediaKind(StrEnum):
    """What a generation produces; a provider spec says which kinds it serves."""

    VIDEO = "video"
    IMAGE = "image"


class MediaOutput(Protocol):
    """A finished file (video or image), read as chunks (never all in memory twice)."""

    @property
    def content_type(self) -> str: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


VideoOutput = MediaOutput


@dataclass(frozen=True)
class Variants:
    """Several videos of one request; `filtered` more were made and withheld for safety.

    A provider returns it only when it made at least one (none at all is an error,
    `content_filtered` when the provider filtered them).
    """

    outputs: tuple[MediaOutput, ...]
    filtered: int = 0
    reasons: tuple[str, ...] = ()


_Kept = TypeVar("_Kept")


class Survivors(list[_Kept]):
    """The images a provider kept when it withheld `filtered` others for safety (a list)."""

    def __init__(self, kept: Sequence[_Kept], filtered: int, reasons: Sequence[str]) -> None:
        super().__init__(kept)
        self.filtered = filtered
        self.reasons = tuple(reasons)


@dataclass(frozen=True)
class BytesOutput:
    """A file the provider returned inline (video by default)."""

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


@dataclass(frozen=True)
class ImageRequest:
    """Everything a provider needs to generate `count` images.

    job_id: the GeneratedAsset id (stable across restarts and retries).
    images: input images to edit or take as reference, in the order they are wired.
    resumed: the job began in an earlier process (see VideoRequest).
    """

    job_id: str
    prompt: str
    count: int = 1
    aspect_ratio: str = "1:1"
    negative_prompt: str | None = None
    model: str | None = None
    seed: int | None = None
    workflow: str | None = None
    images: tuple[InputImage, ...] = ()
    resumed: bool = False


Request_contra = TypeVar("Request_contra", contravariant=True)
Output_co = TypeVar("Output_co", covariant=True)


class GenerationProvider(Protocol[Request_contra, Output_co]):
    """A source of generated media: one request in, one output (of its media kind) out."""

    name: str

    @property
    def deadline_seconds(self) -> float: ...

    def validate(self, request: Request_contra) -> None:
        """Raise InvalidProviderRequest for parameters the provider would refuse."""

    async def start(self, request: Request_contra) -> str:
        """Submit the job; return the provider's operation id."""

    async def follow(
        self, operation_id: str, request: Request_contra, report: ProgressCallback
    ) -> Output_co:
        """Wait for the job to end; return its output or raise ProviderError."""

    async def cancel(self, operation_id: str) -> None:
        """Ask the provider to stop the job (best effort)."""

    async def close(self) -> None:
        """Release clients and connections."""


def owns_call_retries(provider: object) -> bool:
    """Whether a provider retries its own I/O calls, so its caller must not retry them too.

    One owner per retry: a provider that sets `owns_call_retries = True` retries each
    transient call itself; the processor then retries only whole-job failures.
    """
    return bool(getattr(provider, "owns_call_retries", False))


VideoProvider = GenerationProvider[VideoRequest, MediaOutput | Variants]
"""A source of generated videos."""

ImageProvider = GenerationProvider[ImageRequest, Sequence[MediaOutput]]
"""A source of generated images: `follow()` returns one output per image asked for."""
