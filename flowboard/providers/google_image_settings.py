"""Settings of the Gemini image and Imagen providers (no google-genai import here).

Credentials are not repeated: both providers use those of `[providers.veo]` (Gemini API
key, or Vertex AI project/location with credentials or an express-mode API key).
"""

from __future__ import annotations

from flowboard.config import GeminiImageSettings, GoogleImageSettings, ImagenSettings, VeoSettings

__all__ = ["GeminiImageSettings", "GoogleImageSettings", "ImagenSettings", "google_settings"]


def google_settings(settings: GoogleImageSettings, veo: VeoSettings) -> VeoSettings:
    """Veo's credentials, pointed at the image provider's endpoint when it names one."""
    # Veo's own output options (Cloud Storage results) do not apply to images.
    base_url = settings.base_url or veo.base_url
    return veo.model_copy(update={"base_url": base_url, "output_gcs_uri": ""})
