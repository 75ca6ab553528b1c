"""Veo's provider spec, apart from `veo.py` so that finding it does not load google-genai."""

from __future__ import annotations

from typing import Any

from flowboard.config import VeoSettings
from flowboard.providers.base import MediaKind
from flowboard.providers.spec import ProviderContext, ProviderSpec


def _build(settings: VeoSettings, context: ProviderContext) -> dict[MediaKind, Any]:
    from flowboard.providers.veo import VeoProvider  # google-genai alone is ~55 MB

    # One retry policy per job lives in the processor, where attempts are recorded.
    return {MediaKind.VIDEO: VeoProvider(settings, attempts=1)}


SPEC = ProviderSpec(
    name="veo",
    settings_model=VeoSettings,
    build=_build,
    media=frozenset({MediaKind.VIDEO}),
    enabled=lambda settings: bool(settings.api_key or settings.project),
)
