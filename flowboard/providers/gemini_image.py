"""Gemini image models ("Nano Banana") through google-genai `generate_content`.

Gemini API key or Vertex AI (credentials of `[providers.veo]`). One image a request,
so `count` images are `count` concurrent requests (seeds `seed`, `seed + 1` … when set).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flowboard.config import VeoSettings
from flowboard.providers.base import BytesOutput, ImageRequest, ProgressCallback
from flowboard.providers.google_image import (
    GeminiImageCall,
    check_common,
    generate_content_images,
    operation_id,
    refuse,
)
from flowboard.providers.google_image_settings import GeminiImageSettings, google_settings
from flowboard.providers.veo_client import VeoClient
from flowboard.providers.veo_models import check_credentials

_LOGGER = logging.getLogger(__name__)

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
MAX_IMAGES = 4
MAX_INPUT_IMAGES = 14  # Gemini 3 image models; 2.5 Flash Image works best with up to 3


class GeminiImageProvider:
    """Generate and edit images with a Gemini image model; satisfies `ImageProvider`."""

    name = "gemini_image"

    def __init__(self, settings: GeminiImageSettings, veo: VeoSettings) -> None:
        self._settings = settings
        self._google = google_settings(settings, veo)
        self._client = VeoClient(self._google, settings.request_timeout_seconds)

    @property
    def deadline_seconds(self) -> float:
        return self._settings.deadline_seconds

    def _model(self, request: ImageRequest) -> str:
        return request.model or self._settings.model

    def validate(self, request: ImageRequest) -> None:
        """Raise InvalidProviderRequest (a 422) for what the service would refuse."""
        check_credentials(self._google)
        model = self._model(request)
        if not model.startswith("gemini-") or "image" not in model:
            raise refuse("model", f"must be a Gemini image model (gemini-…-image…), got {model!r}")
        if request.negative_prompt:
            raise refuse("negative_prompt", "Gemini image models take none; say it in the prompt")
        # No prompt check: the node is also checked before its upstream prompt or images
        # are known, and a run with neither fails as input_missing before reaching here.
        if len(request.images) > MAX_INPUT_IMAGES:
            raise refuse("images", f"at most {MAX_INPUT_IMAGES}")
        check_common(request, ASPECT_RATIOS, MAX_IMAGES)

    async def start(self, request: ImageRequest) -> str:
        """Check the request; the generation itself runs in `follow()` (one call, no operation)."""
        self.validate(request)
        return operation_id(self.name, request.job_id)

    async def follow(
        self, operation_id: str, request: ImageRequest, report: ProgressCallback
    ) -> Sequence[BytesOutput]:
        """Make the images; ProviderError when none came back or a call failed."""
        extra = {"job_id": request.job_id, "operation": operation_id}
        model = self._model(request)
        calls = [
            GeminiImageCall(
                model=model,
                prompt=request.prompt,
                aspect_ratio=request.aspect_ratio,
                seed=None if request.seed is None else (request.seed + index) % 2**32,
                images=request.images,
            )
            for index in range(request.count)
        ]
        aio = await self._client.aio()
        images = await generate_content_images(aio, calls)
        _LOGGER.info("gemini images made: %d of %d", len(images), request.count, extra=extra)
        return images

    async def cancel(self, operation_id: str) -> None:
        """Nothing to cancel remotely: the requests in flight end with the job's task."""
        _LOGGER.info("gemini image cancel: no remote operation", extra={"operation": operation_id})

    async def close(self) -> None:
        await self._client.close()
