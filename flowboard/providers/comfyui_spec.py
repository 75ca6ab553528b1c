"""ComfyUI's provider spec, apart from `comfyui.py`: its client loads only when configured."""

from __future__ import annotations

from typing import Any

from flowboard.config import ComfyUISettings
from flowboard.providers.base import MediaKind
from flowboard.providers.spec import ProviderContext, ProviderSpec


def _build(settings: ComfyUISettings, context: ProviderContext) -> dict[MediaKind, Any]:
    from flowboard.providers.comfyui import ComfyUIProvider
    from flowboard.providers.comfyui_image import ComfyUIImageProvider

    video = ComfyUIProvider(settings, context.work_dir)
    # One connection for both kinds: image workflows share the video side's client.
    return {MediaKind.VIDEO: video, MediaKind.IMAGE: ComfyUIImageProvider(video)}


SPEC = ProviderSpec(
    name="comfyui",
    settings_model=ComfyUISettings,
    build=_build,
    media=frozenset({MediaKind.VIDEO, MediaKind.IMAGE}),
    enabled=lambda settings: bool(settings.url),
)
