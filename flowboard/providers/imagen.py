"""Imagen through google-genai `generate_images` (Vertex AI only).

google-genai 2.x sends `generate_images` only to Vertex AI (and the Gemini API has shut
Imagen down): in gemini mode the provider refuses every request with a 422 saying so.
One `predict` makes up to 4 images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from flowboard.config import VeoSettings
from flowboard.providers.base import BytesOutput, ImageRequest, ProgressCallback
from flowboard.providers.google_image import (
    ImagenCall,
    check_common,
    generate_imagen_images,
    operation_id,
    refuse,
)
from flowboard.providers.google_image_settings import ImagenSettings, google_settings
from flowboard.providers.veo_client import VeoClient
from flowboard.providers.veo_models import check_credentials

_LOGGER = logging.getLogger(__name__)

ASPECT_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
MAX_IMAGES = 4
# Models that still take a negative prompt (dropped from imagen-3.0-generate-002 on).
_NEGATIVE_PROMPT_MODELS = ("imagen-3.0-generate-001", "imagen-3.0-fast-generate-001")


class ImagenProvider:
    """Generate images with Imagen on Vertex AI; satisfies `ImageProvider`."""

    name = "imagen"

    def __init__(self, settings: ImagenSettings, veo: VeoSettings) -> None:
        self._settings = settings
        self._google = google_settings(settings, veo)
        self._client = VeoClient(self._google, settings.request_timeout_seconds)

    @property
    def deadline_seconds(self) -> float:
        return self._settings.deadline_seconds

    def _model(self, request: ImageRequest) -> str:
        return request.model or self._settings.model

    def validate(self, request: ImageRequest) -> None:
        """Raise InvalidProviderRequest (a 422) for what the SDK or the service would refuse."""
        if self._google.mode != "vertex":
            raise refuse(
                "provider",
                "Imagen needs Vertex AI (providers.veo.mode = vertex): google-genai 2.x does"
                " not send generate_images to the Gemini API, which no longer serves Imagen",
            )
        check_credentials(self._google)
        model = self._model(request)
        if not model.startswith("imagen-"):
            raise refuse("model", f"must be an Imagen model (imagen-…), got {model!r}")
        if request.images:
            raise refuse("images", "Imagen generates from text only; edit with gemini_image")
        if request.negative_prompt and not model.startswith(_NEGATIVE_PROMPT_MODELS):
            raise refuse("negative_prompt", f"not supported by {model}")
        check_common(request, ASPECT_RATIOS, MAX_IMAGES)

    async def start(self, request: ImageRequest) -> str:
        """Check the request; the generation itself runs in `follow()` (one call, no operation)."""
        self.validate(request)
        return operation_id(self.name, request.job_id)

    async def follow(
        self, operation_id: str, request: ImageRequest, report: ProgressCallback
    ) -> Sequence[BytesOutput]:
        """Make the images; ProviderError when none came back or the call failed."""
        extra = {"job_id": request.job_id, "operation": operation_id}
        call = ImagenCall(
            model=self._model(request),
            prompt=request.prompt,
            count=request.count,
            aspect_ratio=request.aspect_ratio,
            seed=request.seed,
            negative_prompt=request.negative_prompt,
        )
        aio = await self._client.aio()
        images = await generate_imagen_images(aio, call)
        _LOGGER.info("imagen images made: %d of %d", len(images), request.count, extra=extra)
        return images

    async def cancel(self, operation_id: str) -> None:
        """Nothing to cancel remotely: the request in flight ends with the job's task."""
        _LOGGER.info("imagen cancel: no remote operation", extra={"operation": operation_id})

    async def close(self) -> None:
        await self._client.close()
