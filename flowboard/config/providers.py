"""The settings of the built-in providers: `[providers]` and its `[providers.<name>]` tables."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from flowboard.config.base import Section


class LocalProviderSettings(Section):
    fps: int = Field(default=24, ge=1, le=60)
    deadline_seconds: float = Field(default=600.0, gt=0)


class VeoModelTiming(Section):
    """One model's polling schedule; a key left out takes the `[providers.veo]` value."""

    first_poll_seconds: float | None = Field(default=None, gt=0)
    typical_seconds: float | None = Field(default=None, gt=0)
    poll_interval_seconds: float | None = Field(default=None, gt=0)
    poll_max_seconds: float | None = Field(default=None, gt=0)


class VeoSettings(Section):
    mode: Literal["gemini", "vertex"] = "gemini"
    api_key: str = ""
    project: str = ""
    location: str = "us-central1"
    credentials_file: str = ""
    access_token: str = ""
    base_url: str = ""
    model: str = "veo-3.0-generate-001"
    # The polling schedule (providers/veo_polling.py): first poll near the earliest
    # plausible completion, every poll_interval_seconds around typical_seconds, then
    # backing off to poll_max_seconds. `models` overrides it per model name prefix.
    first_poll_seconds: float = Field(default=40.0, gt=0)
    typical_seconds: float = Field(default=90.0, gt=0)
    poll_interval_seconds: float = Field(default=20.0, gt=0)
    poll_max_seconds: float = Field(default=30.0, gt=0)
    poll_jitter: float = Field(default=0.02, ge=0, lt=1)
    # Estimates from Google's documented 11 s - 6 min latency; a `models` table in the
    # config file replaces these entries.
    models: dict[str, VeoModelTiming] = Field(
        default_factory=lambda: {
            prefix: VeoModelTiming(
                first_poll_seconds=15.0, typical_seconds=60.0, poll_interval_seconds=10.0
            )
            for prefix in ("veo-3.0-fast", "veo-3.1-fast")
        }
    )
    deadline_seconds: float = Field(default=900.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _legacy_poll_initial(cls, data: Any) -> Any:
        """Read the replaced `poll_initial_seconds` as the first poll and the interval."""
        if isinstance(data, dict) and "poll_initial_seconds" in data:
            data = dict(data)
            initial = data.pop("poll_initial_seconds")
            data.setdefault("first_poll_seconds", initial)
            data.setdefault("poll_interval_seconds", initial)
        return data

    output_gcs_uri: str = Field(default="", pattern=r"^(gs://[a-z0-9][a-z0-9._-]{2,221}/.*)?$")
    delete_gcs_output: bool = False
    storage_base_url: str = ""


class GoogleImageSettings(Section):
    """What the gemini_image and imagen providers share (credentials: providers.veo)."""

    enabled: bool = False
    model: str = Field(default="", min_length=1)
    base_url: str = ""
    deadline_seconds: float = Field(default=300.0, gt=0)
    request_timeout_seconds: float = Field(default=120.0, gt=0)


class GeminiImageSettings(GoogleImageSettings):
    model: str = Field(default="gemini-2.5-flash-image", min_length=1)


class ImagenSettings(GoogleImageSettings):
    model: str = Field(default="imagen-4.0-generate-001", min_length=1)


class ComfyWorkflowSettings(Section):
    file: str
    prompt: str = ""
    negative_prompt: str = ""
    image: str = ""
    width: str = ""
    height: str = ""
    frames: str = ""
    seconds: str = ""
    fps: str = ""
    seed: str = ""
    batch_size: str = ""  # image workflows: how many images (an image_gen node's count)
    output_node: str


class ComfyUISettings(Section):
    url: str = ""
    workflow: str = "default"
    image_workflow: str = ""  # workflow of an image_gen node that names none
    workflows: dict[str, ComfyWorkflowSettings] = Field(default_factory=dict)
    deadline_seconds: float = Field(default=1800.0, gt=0)
    keep_inputs: bool = False


class ProvidersSettings(Section):
    # Other `[providers.<name>]` tables belong to provider modules that declare their own
    # settings model: kept raw here, validated by the provider registry at start-up.
    model_config = ConfigDict(extra="allow", frozen=True)

    default: str = Field(default="local", min_length=1, max_length=64)
    image_default: str = Field(default="local", min_length=1, max_length=64)
    local: LocalProviderSettings = LocalProviderSettings()
    veo: VeoSettings = VeoSettings()
    comfyui: ComfyUISettings = ComfyUISettings()
    gemini_image: GeminiImageSettings = GeminiImageSettings()
    imagen: ImagenSettings = ImagenSettings()
