"""The imagen provider's spec, apart from `imagen.py` (google-genai is ~55 MB)."""

from __future__ import annotations

from typing import Any

from flowboard.config import ConfigError
from flowboard.providers.base import MediaKind
from flowboard.providers.google_image_settings import ImagenSettings
from flowboard.providers.spec import ProviderContext, ProviderSpec


def _build(settings: ImagenSettings, context: ProviderContext) -> dict[MediaKind, Any]:
    veo = context.settings.providers.veo
    if veo.mode != "vertex" or not (veo.project or veo.api_key):
        # google-genai 2.x sends generate_images to Vertex AI only (Imagen is shut down
        # on the Gemini API): refuse at start-up rather than on every run.
        raise ConfigError(
            "config error: providers.imagen.enabled: Imagen needs Vertex AI:"
            ' providers.veo.mode = "vertex" with a project (or an express-mode api_key)'
        )
    from flowboard.providers.imagen import ImagenProvider

    return {MediaKind.IMAGE: ImagenProvider(settings, veo)}


SPEC = ProviderSpec(
    name="imagen",
    settings_model=ImagenSettings,
    build=_build,
    media=frozenset({MediaKind.IMAGE}),
    enabled=lambda settings: settings.enabled,
)
