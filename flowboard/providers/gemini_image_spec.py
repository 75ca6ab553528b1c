"""The gemini_image provider's spec, apart from `gemini_image.py` (google-genai is ~55 MB)."""

from __future__ import annotations

from typing import Any

from flowboard.config import ConfigError
from flowboard.providers.base import MediaKind
from flowboard.providers.google_image_settings import GeminiImageSettings
from flowboard.providers.spec import ProviderContext, ProviderSpec


def _build(settings: GeminiImageSettings, context: ProviderContext) -> dict[MediaKind, Any]:
    veo = context.settings.providers.veo
    if not (veo.api_key or veo.project):
        raise ConfigError(
            "config error: providers.gemini_image.enabled: needs Google credentials in"
            " [providers.veo] (api_key, or project for vertex mode)"
        )
    from flowboard.providers.gemini_image import GeminiImageProvider

    return {MediaKind.IMAGE: GeminiImageProvider(settings, veo)}


SPEC = ProviderSpec(
    name="gemini_image",
    settings_model=GeminiImageSettings,
    build=_build,
    media=frozenset({MediaKind.IMAGE}),
    enabled=lambda settings: settings.enabled,
)
