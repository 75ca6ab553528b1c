"""The offline image provider: a real PNG per image, drawn from the prompt and the seed.

Deterministic: the same prompt, seed, size and input image give the same bytes, so a
flow's image → video chain can be checked pixel for pixel with no cloud account. An
input image (an edit) is the picture's base, tinted by the seed.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageOps

from flowboard.providers.base import (
    BytesOutput,
    ImageRequest,
    InputImage,
    InvalidProviderRequest,
    ProgressCallback,
)

_LOGGER = logging.getLogger(__name__)

# About a quarter megapixel, even sides: enough to see, cheap to encode.
SIZES: dict[str, tuple[int, int]] = {
    "1:1": (512, 512), "2:3": (416, 624), "3:2": (624, 416), "3:4": (448, 596),
    "4:3": (596, 448), "4:5": (456, 570), "5:4": (570, 456), "9:16": (384, 682),
    "16:9": (682, 384), "21:9": (784, 336),
}  # fmt: skip
MAX_COUNT = 4
DEADLINE_SECONDS = 120.0


def _colors(key: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(key.encode()).digest()
    return (digest[0], digest[1], digest[2]), (digest[3], digest[4], digest[5])


def render_image(
    prompt: str, size: tuple[int, int], seed: int, index: int, source: bytes | None = None
) -> bytes:
    """Draw one PNG: a seeded gradient (or the tinted source image) and the prompt."""
    top, bottom = _colors(f"{prompt}|{seed}|{index}")
    width, height = size
    if source is not None:
        with Image.open(io.BytesIO(source)) as opened:
            base = ImageOps.fit(opened.convert("RGB"), size)
        image = Image.blend(base, Image.new("RGB", size, top), 0.25)
    else:
        ramp = Image.linear_gradient("L").resize(size)
        image = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)
    draw = ImageDraw.Draw(image)
    text = prompt.strip()[:80]
    if text:
        draw.rectangle((0, height - 28, width, height), fill=(0, 0, 0))
        draw.text((8, height - 22), text, fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _refuse(field: str, problem: str) -> InvalidProviderRequest:
    return InvalidProviderRequest(f"{field}: {problem}")


class LocalImageProvider:
    """Render images offline; satisfies `ImageProvider`."""

    name = "local"

    @property
    def deadline_seconds(self) -> float:
        return DEADLINE_SECONDS

    def validate(self, request: ImageRequest) -> None:
        if request.aspect_ratio not in SIZES:
            raise _refuse("aspect_ratio", f"must be one of {', '.join(SIZES)}")
        if not 1 <= request.count <= MAX_COUNT:
            raise _refuse("count", f"must be between 1 and {MAX_COUNT}")
        for image in request.images:
            if not image.content_type.startswith("image/") or not image.data:
                raise _refuse("images", "each must be a non-empty image")

    async def start(self, request: ImageRequest) -> str:
        """Check the request; the render runs in `follow()` (and again after a restart)."""
        self.validate(request)
        return f"local:{request.job_id}"

    async def follow(
        self, operation_id: str, request: ImageRequest, report: ProgressCallback
    ) -> Sequence[BytesOutput]:
        size = SIZES[request.aspect_ratio]
        seed = request.seed if request.seed is not None else _job_seed(request.job_id)
        source: InputImage | None = request.images[0] if request.images else None
        images = []
        for index in range(request.count):
            data = await asyncio.to_thread(
                render_image, request.prompt, size, seed, index, source.data if source else None
            )
            images.append(BytesOutput(data, "image/png"))
        _LOGGER.info("local images rendered: %d", len(images), extra={"job_id": request.job_id})
        return images

    async def cancel(self, operation_id: str) -> None:
        """Nothing runs outside the job's own task."""

    async def close(self) -> None:
        """Nothing to release."""


def _job_seed(job_id: str) -> int:
    """A seed fixed per job: a retry renders the same images, a new job new ones."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big")
