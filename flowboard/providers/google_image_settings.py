"""Settings of the Gemini image and Imagen providers (no google-genai import here).

Credentials are not repeated: both providers use those of `[providers.veo]` (Gemini API
key, or Vertex AI project/location with credentials or an express-mode API key).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from flowboard.config import VeoSettings


class GoogleImageSettings(BaseModel):
    """What the two Google image providers share."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    model: str = Field(min_length=1)
    base_url: str = ""
    deadline_seconds: float = Field(default=300.0, gt=0)
    request_timeout_seconds: float = Field(default=120.0, gt=0)

    def google(self, veo: VeoSettings) -> VeoSettings:
        """Veo's credentials, pointed at this provider's endpoint when it names one."""
        # Veo's own output options (Cloud Storage results) do not apply to images.
        return veo.model_copy(
            update={"base_url": self.base_url or veo.base_url, "output_gcs_uri": ""}
        )


class GeminiImageSettings(GoogleImageSettings):
    model: str = Field(default="gemini-2.5-flash-image", min_length=1)


class ImagenSettings(GoogleImageSettings):
    model: str = Field(default="imagen-4.0-generate-001", min_length=1)
