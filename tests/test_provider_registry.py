"""The provider registry: specs found in `flowboard.providers`, settings checked at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flowboard.config import ConfigError, load_settings
from flowboard.providers.base import MediaKind
from flowboard.providers.registry import (
    ProviderRegistry,
    UnknownProvider,
    builtin_specs,
    fill_registry,
)


def test_builtin_specs_are_found_without_loading_their_sdks() -> None:
    code = (
        "import sys, json\n"
        "from flowboard.providers.registry import builtin_specs\n"
        "names = sorted(s.name for s in builtin_specs())\n"
        "print(json.dumps([names, 'google.genai' in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == '[["comfyui", "gemini_image", "imagen", "local", "veo"], false]'


async def test_enabled_providers_are_built_by_media_kind(tmp_path: Path) -> None:
    settings = load_settings(None, environ={}, overrides={"data_dir": str(tmp_path)})
    registry = ProviderRegistry({kind: "local" for kind in MediaKind})
    try:
        fill_registry(registry, settings, builtin_specs(), tmp_path)
        assert sorted(registry.providers) == ["local"]  # veo and comfyui have no settings
        assert registry.video(None).name == "local"
        with pytest.raises(UnknownProvider, match="'veo' is unknown or not configured"):
            registry.get("veo")
    finally:
        await registry.close()


def test_a_table_naming_no_provider_stops_start_up(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"FLOWBOARD_PROVIDERS__VOE__API_KEY": "k"}, overrides={})
    registry = ProviderRegistry({})
    with pytest.raises(ConfigError, match=r"providers\.voe: no such provider"):
        fill_registry(registry, settings, builtin_specs(), tmp_path)
