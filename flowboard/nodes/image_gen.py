"""`image_gen`: generate 1-4 images from a prompt, editing or referring to wired images."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from flowboard.assets.model import AssetType, Workflow
from flowboard.media.sniff import UnsupportedMedia, sniff_image
from flowboard.nodes.base import NodeType
from flowboard.nodes.kind import Inputs, StoredFile, StoredOutput, StoreTarget
from flowboard.providers.base import (
    ErrorCode,
    ImageRequest,
    MediaKind,
    MediaOutput,
    PermanentProviderError,
    Survivors,
)
from flowboard.schema import ApiModel

# The union of what the image providers take; each provider refuses (422) what it lacks.
AspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
MAX_IMAGE_BYTES = 64 * 2**20  # a generated image larger than this is not an image we keep


class ImageGenNodeData(ApiModel):
    prompt: str = Field(default="", max_length=4_000)
    negative_prompt: str | None = Field(default=None, max_length=4_000)
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, max_length=200)
    aspect_ratio: AspectRatio = "1:1"
    count: int = Field(default=1, ge=1, le=4)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    workflow: str | None = Field(default=None, max_length=100)


async def _read(output: MediaOutput) -> bytes:
    parts, size = [], 0
    async for chunk in output.chunks():
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            message = f"a generated image is over {MAX_IMAGE_BYTES} bytes"
            raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, message)
        parts.append(chunk)
    return b"".join(parts)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


@dataclass(frozen=True)
class ImageGeneration:
    """Images from the prompt; wired images are the ones to edit or take as reference."""

    media: MediaKind = MediaKind.IMAGE
    asset_type: AssetType = AssetType.IMAGE
    max_input_images: int = 14  # Gemini 3 image models' limit; providers check their own

    def provider_of(self, data: ImageGenNodeData) -> str | None:
        return data.provider

    def references(self, data: ImageGenNodeData) -> dict[str, str]:
        return {}

    def request(self, data: ImageGenNodeData, job_id: str, inputs: Inputs) -> ImageRequest:
        return ImageRequest(
            job_id=job_id,
            prompt=inputs.prompt(data.prompt),
            count=data.count,
            aspect_ratio=data.aspect_ratio,
            negative_prompt=data.negative_prompt,
            model=data.model,
            seed=data.seed,
            workflow=data.workflow,
            images=inputs.images,
            resumed=inputs.resumed,
        )

    def workflow(self, data: ImageGenNodeData, has_image_input: bool) -> Workflow:
        return Workflow.IMAGE_TO_IMAGE if has_image_input else Workflow.TEXT_TO_IMAGE

    async def store(self, output: Sequence[MediaOutput], target: StoreTarget) -> StoredOutput:
        """Check each image by its content, store it with its size and SHA-256."""
        if not output:
            raise PermanentProviderError(ErrorCode.EMPTY_RESULT, "the provider made no image")
        files = []
        for index, image in enumerate(output):
            data = await _read(image)
            try:
                info = await asyncio.to_thread(sniff_image, data)
            except UnsupportedMedia as error:
                message = f"image {index + 1} is not a usable image: {error}"
                raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, message) from error
            key = f"{target.prefix}-{index}.{info.extension}"
            stored = await target.storage.put_stream(key, _once(data), info.content_type)
            url = await target.storage.url_for(stored.key)
            files.append(StoredFile(stored, url, info.width, info.height))
        extra: dict[str, Any] = {}
        if isinstance(output, Survivors) and output.filtered:
            made = output.filtered + len(files)
            reasons = "; ".join(output.reasons) or "no reason given"
            extra["warnings"] = [f"{output.filtered} of {made} images were filtered: {reasons}"]
        return StoredOutput(files=tuple(files), extra=extra)


NODE_TYPE = NodeType("image_gen", ImageGenNodeData, runnable=True, generation=ImageGeneration())
