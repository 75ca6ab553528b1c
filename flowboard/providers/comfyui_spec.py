"""ComfyUI's provider spec, apart from `comfyui.py`: its client loads only when configured."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flowboard.config import ComfyUISettings
from flowboard.providers.base import MediaKind
from flowboard.providers.spec import ProviderContext, ProviderSpec


def _build(settings: ComfyUISettings, context: ProviderContext) -> dict[MediaKind, Any]:
    from flowboard.providers.comfyui import ComfyTiming, ComfyUIProvider
    from flowboard.providers.comfyui_image import ComfyUIImageProvider

    # Each call's tries are `execution.provider_attempts`: the provider owns them, so a
    # start is attempted that many times in total, not that many times that many.
    attempts = context.settings.execution.provider_attempts
    timing = ComfyTiming(retry=replace(ComfyTiming().retry, attempts=attempts))
    video = ComfyUIProvider(settings, context.work_dir, timing=timing)
    # One connection for both kinds: image workflows share the video side's client.
    return {MediaKind.VIDEO: video, MediaKind.IMAGE: ComfyUIImageProvider(video)}


SPEC = ProviderSpec(
    name="comfyui",
    settings_model=ComfyUISettings,
    build=_build,
    media=frozenset({MediaKind.VIDEO, MediaKind.IMAGE}),
    enabled=lambda settings: bool(settings.url),
)
