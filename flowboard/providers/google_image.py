"""Gemini image models and Imagen through google-genai: one call each, and its answer.

Both APIs answer synchronously (no operation to poll): a call is the whole generation.
Gemini image models make one image a request (`candidateCount > 1` is refused by the
service), so N images are N concurrent requests; Imagen makes up to 4 in one `predict`.
Which answers mean "filtered" and which mean "empty" is in docs/notes/google-image-wire.md.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.genai import errors as genai_errors
from google.genai import types
from google.genai.client import AsyncClient

from flowboard.providers.base import (
    BytesOutput,
    ErrorCode,
    ImageRequest,
    InputImage,
    InvalidProviderRequest,
    PermanentProviderError,
    ProviderError,
    Survivors,
    TransientProviderError,
)
from flowboard.providers.veo_errors import CALL_ERRORS, provider_error

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

# A candidate's finishReason when the service withheld the image it made.
FILTER_REASONS = frozenset({
    "SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST",
    "SPII", "RECITATION", "IMAGE_RECITATION",
})  # fmt: skip
_RAI_MESSAGE = "Responsible AI"
SEED_MAX = 2**32 - 1
INPUT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/webp",
)  # Imagen refuses a prompt with an HTTP 400 saying this


@dataclass(frozen=True)
class GeminiImageCall:
    """One generateContent request for one image."""

    model: str
    prompt: str
    aspect_ratio: str
    seed: int | None = None
    images: tuple[InputImage, ...] = ()


@dataclass(frozen=True)
class ImagenCall:
    """One Imagen predict request for `count` images."""

    model: str
    prompt: str
    count: int
    aspect_ratio: str
    seed: int | None = None
    negative_prompt: str | None = None


@dataclass
class Outcome:
    """What came back from one or more calls: the images, or why there are none."""

    images: list[BytesOutput]
    filtered: list[str]
    """A reason for each image the service withheld (or for a refused prompt)."""
    empty: list[str]
    """Why a call made no image although nothing was filtered."""

    def result(self, service: str) -> list[BytesOutput]:
        """The images; a Permanent error naming the filter or the emptiness when none."""
        if self.filtered and self.images:
            _LOGGER.warning(
                "%s withheld %d image(s), keeping %d: %s",
                service, len(self.filtered), len(self.images), "; ".join(self.filtered),
            )  # fmt: skip
            return Survivors(self.images, len(self.filtered), self.filtered)
        if self.images:
            return self.images
        if self.filtered:
            detail = "; ".join(self.filtered)
            message = f"{service} filtered {len(self.filtered)} image(s): {detail}"
            raise PermanentProviderError(ErrorCode.CONTENT_FILTERED, message)
        detail = "; ".join(self.empty) or "no reason given"
        message = f"{service} answered without an image and without a filter reason: {detail}"
        raise PermanentProviderError(ErrorCode.EMPTY_RESULT, message)


def map_error(error: BaseException, service: str) -> ProviderError:
    """Map one failed call's exception: 429/5xx/network → transient, others permanent."""
    if isinstance(error, genai_errors.ClientError) and _RAI_MESSAGE in (error.message or ""):
        message = f"{service} refused the prompt: {error.message}"
        return PermanentProviderError(ErrorCode.CONTENT_FILTERED, message)
    # As a Veo start: a 4xx that blames the request itself is invalid_request.
    mapped = provider_error(error, "start")
    # provider_error speaks for Veo; name the service that failed instead.
    message = mapped.message.replace("Veo start", f"{service} generation", 1)
    if isinstance(mapped, TransientProviderError):
        return TransientProviderError(message, mapped.code)
    return PermanentProviderError(mapped.code, message)


async def _mapped(service: str, call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except CALL_ERRORS as error:
        raise map_error(error, service) from error


def _content_config(call: GeminiImageCall) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        seed=call.seed,
        image_config=types.ImageConfig(aspect_ratio=call.aspect_ratio),
    )


def _contents(call: GeminiImageCall) -> list[types.PartUnion]:
    parts: list[types.PartUnion] = []
    if call.prompt.strip():
        parts.append(types.Part.from_text(text=call.prompt))
    parts += [types.Part.from_bytes(data=i.data, mime_type=i.content_type) for i in call.images]
    return parts


def read_content(response: types.GenerateContentResponse, into: Outcome) -> None:
    """Add one generateContent answer's image, filter reason or emptiness to `into`."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = feedback.block_reason_message or ""
        into.filtered.append(f"prompt blocked ({feedback.block_reason.value}) {reason}".strip())
        return
    found = 0
    for candidate in response.candidates or []:
        parts = (candidate.content.parts if candidate.content else None) or []
        for part in parts:
            blob = part.inline_data
            if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                into.images.append(BytesOutput(blob.data, blob.mime_type or "image/png"))
                found += 1
        finish = candidate.finish_reason.value if candidate.finish_reason else None
        if not found and finish in FILTER_REASONS:
            into.filtered.append(f"output withheld ({finish})")
            return
        if not found:
            text = "".join(part.text or "" for part in parts).strip()
            into.empty.append(f"finish reason {finish}" + (f", text: {text[:200]}" if text else ""))
    if not response.candidates:
        into.empty.append("no candidates")


async def generate_content_images(
    aio: AsyncClient, calls: Sequence[GeminiImageCall], service: str = "Gemini image"
) -> list[BytesOutput]:
    """Run the calls concurrently (one image each); return the images made."""

    async def one(call: GeminiImageCall) -> types.GenerateContentResponse:
        return await _mapped(
            service,
            lambda: aio.models.generate_content(
                model=call.model, contents=_contents(call), config=_content_config(call)
            ),
        )

    tasks = [
        asyncio.create_task(one(call), name=f"gemini-image-{i}") for i, call in enumerate(calls)
    ]
    try:
        responses = await asyncio.gather(*tasks)
    except BaseException:
        # One failed (or we were cancelled): the others' images would be thrown away.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    outcome = Outcome([], [], [])
    for response in responses:
        read_content(response, outcome)
    return outcome.result(service)


def read_imagen(response: types.GenerateImagesResponse, asked: int) -> Outcome:
    """Return the images of one Imagen answer, and why any asked for are missing."""
    outcome = Outcome([], [], [])
    for generated in response.generated_images or []:
        image = generated.image
        if image is not None and image.image_bytes:
            outcome.images.append(BytesOutput(image.image_bytes, image.mime_type or "image/png"))
        elif generated.rai_filtered_reason:
            outcome.filtered.append(generated.rai_filtered_reason)
    missing = asked - len(outcome.images) - len(outcome.filtered)
    if missing > 0 and not outcome.filtered:
        # Without includeRaiReason a withheld image is just missing; we always ask for
        # reasons, so a gap without any is the service's silence, not a filter.
        outcome.empty.append(f"{missing} of {asked} image(s) missing from the answer")
    return outcome


def _imagen_config(call: ImagenCall) -> types.GenerateImagesConfig:
    return types.GenerateImagesConfig(
        number_of_images=call.count,
        aspect_ratio=call.aspect_ratio,
        negative_prompt=call.negative_prompt or None,
        seed=call.seed,
        # The service refuses a seed while its invisible watermark is on (the default).
        add_watermark=False if call.seed is not None else None,
        include_rai_reason=True,
    )


async def generate_imagen_images(
    aio: AsyncClient, call: ImagenCall, service: str = "Imagen"
) -> list[BytesOutput]:
    """Run one Imagen predict call; return the images made."""

    def start() -> Awaitable[types.GenerateImagesResponse]:
        # google-genai warns once a process that generate_images is deprecated (Imagen is
        # being retired); the warning is raised when the call is made, not awaited.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The generate_images method is deprecated")
            started: Awaitable[types.GenerateImagesResponse] = aio.models.generate_images(
                model=call.model, prompt=call.prompt, config=_imagen_config(call)
            )
        return started

    response = await _mapped(service, start)
    return read_imagen(response, call.count).result(service)


def refuse(field: str, problem: str) -> InvalidProviderRequest:
    """A request the provider would refuse: a 422 naming the field, before any call."""
    return InvalidProviderRequest(f"{field}: {problem}")


def check_common(request: ImageRequest, aspects: Sequence[str], max_count: int) -> None:
    """Refuse what both Google image APIs refuse: aspect ratio, count, seed, input types."""
    if request.aspect_ratio not in aspects:
        raise refuse("aspect_ratio", f"must be one of {', '.join(aspects)}")
    if not 1 <= request.count <= max_count:
        raise refuse("count", f"must be between 1 and {max_count}")
    if request.seed is not None and not 0 <= request.seed <= SEED_MAX:
        raise refuse("seed", f"must be between 0 and {SEED_MAX}")
    for image in request.images:
        if image.content_type not in INPUT_TYPES or not image.data:
            raise refuse("images", f"each must be a non-empty {' or '.join(INPUT_TYPES)}")


def operation_id(provider: str, job_id: str) -> str:
    """Name a job's generation: the call is synchronous, so there is nothing to look up.

    After a restart `follow()` runs the generation again (a new, billed request): the
    service keeps no result to collect.
    """
    return f"{provider}:{job_id}"
