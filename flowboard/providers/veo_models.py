"""What each Veo model accepts, and the checks made before any call to the service."""

from __future__ import annotations

from dataclasses import dataclass

from flowboard.config import VeoSettings
from flowboard.providers.base import InputImage, InvalidVideoRequest, VideoRequest

ASPECT_RATIOS = ("16:9", "9:16")
PERSON_GENERATION = ("allow_all", "allow_adult", "dont_allow")
IMAGE_TYPES = ("image/png", "image/jpeg")
OUTPUT_FPS = 24  # Veo renders at 24 fps and takes no frame rate on the Gemini API
_SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class ModelLimits:
    """The parameters one Veo model family accepts.

    durations: allowed `duration_seconds` values.
    resolutions: allowed output resolutions.
    full_hd_aspects: aspect ratios allowed at 1080p.
    last_frame: whether an end frame (interpolation) is supported.
    audio: whether the model generates audio.
    """

    durations: tuple[int, ...]
    resolutions: tuple[str, ...]
    full_hd_aspects: tuple[str, ...]
    last_frame: bool
    audio: bool


_VEO_2 = ModelLimits((5, 6, 7, 8), ("720p",), (), last_frame=True, audio=False)
_VEO_3_0 = ModelLimits((4, 6, 8), ("720p", "1080p"), ("16:9",), last_frame=False, audio=True)
_VEO_3 = ModelLimits((4, 6, 8), ("720p", "1080p"), ("16:9",), last_frame=True, audio=True)
# Models we know nothing specific about get the service-wide limits.
_GENERIC = ModelLimits((4, 5, 6, 7, 8), ("720p", "1080p"), ("16:9",), last_frame=False, audio=False)
# Longest prefix first: "veo-3.0" must win over "veo-3.".
_FAMILIES = (("veo-2.", _VEO_2), ("veo-3.0-", _VEO_3_0), ("veo-3.", _VEO_3))


def limits_for(model: str) -> ModelLimits:
    """Return the limits of `model`'s family (generic limits for unknown Veo models)."""
    for prefix, limits in _FAMILIES:
        if model.startswith(prefix):
            return limits
    return _GENERIC


def model_of(settings: VeoSettings, request: VideoRequest) -> str:
    """Return the model the request runs on."""
    return request.model or settings.model


def _refuse(field: str, problem: str) -> InvalidVideoRequest:
    return InvalidVideoRequest(f"{field}: {problem}")


def _one_of(values: tuple[object, ...]) -> str:
    return ", ".join(str(value) for value in values)


def is_express(settings: VeoSettings) -> bool:
    """Vertex AI express mode: an API key and no project (nor location) in the paths."""
    return settings.mode == "vertex" and not settings.project and bool(settings.api_key)


def check_credentials(settings: VeoSettings) -> None:
    """Refuse when the configured mode lacks what it needs to authenticate."""
    if settings.mode == "gemini" and not settings.api_key:
        raise _refuse("api_key", "providers.veo.api_key is required in gemini mode")
    if settings.mode == "vertex" and not (settings.project or settings.api_key):
        raise _refuse(
            "project",
            "providers.veo.project is required in vertex mode (or api_key for express mode)",
        )
    if settings.output_gcs_uri and (settings.mode == "gemini" or is_express(settings)):
        # Reading the objects back needs OAuth credentials; an API key cannot.
        raise _refuse("output_gcs_uri", "needs vertex mode with a project and credentials")


def validate_request(settings: VeoSettings, request: VideoRequest) -> None:
    """Raise InvalidVideoRequest naming the first field Veo would refuse."""
    check_credentials(settings)
    model = model_of(settings, request)
    if not model.startswith("veo-"):
        raise _refuse("model", f"must be a Veo model (veo-...), got {model!r}")
    limits = limits_for(model)
    _check_shape(request, model, limits)
    _check_images(request, model, limits)
    _check_extras(settings, request, model, limits)


def _check_shape(request: VideoRequest, model: str, limits: ModelLimits) -> None:
    if request.aspect_ratio not in ASPECT_RATIOS:
        raise _refuse("aspect_ratio", f"must be one of {_one_of(ASPECT_RATIOS)}")
    if request.duration_seconds not in limits.durations:
        allowed = _one_of(limits.durations)
        raise _refuse("duration_seconds", f"must be one of {allowed} for {model}")
    if request.resolution not in limits.resolutions:
        raise _refuse("resolution", f"must be one of {_one_of(limits.resolutions)} for {model}")
    if request.resolution == "1080p" and request.aspect_ratio not in limits.full_hd_aspects:
        allowed = _one_of(limits.full_hd_aspects)
        raise _refuse("resolution", f"1080p needs aspect_ratio {allowed} for {model}")
    if request.person_generation not in (None, *PERSON_GENERATION):
        raise _refuse("person_generation", f"must be one of {_one_of(PERSON_GENERATION)}")
    if request.fps not in (None, OUTPUT_FPS):
        raise _refuse("fps", f"Veo renders at {OUTPUT_FPS} fps only")


def _check_image(field: str, image: InputImage | None) -> None:
    if image is not None and image.content_type not in IMAGE_TYPES:
        raise _refuse(field, f"content type must be one of {_one_of(IMAGE_TYPES)}")
    if image is not None and not image.data:
        raise _refuse(field, "image is empty")


def _check_images(request: VideoRequest, model: str, limits: ModelLimits) -> None:
    if not request.prompt.strip() and request.first_frame is None:
        raise _refuse("prompt", "required unless first_frame is given")
    _check_image("first_frame", request.first_frame)
    _check_image("last_frame", request.last_frame)
    if request.last_frame is None:
        return
    if not limits.last_frame:
        raise _refuse("last_frame", f"not supported by {model}")
    if request.first_frame is None:
        raise _refuse("last_frame", "needs a first_frame")


def _check_extras(
    settings: VeoSettings, request: VideoRequest, model: str, limits: ModelLimits
) -> None:
    if request.generate_audio and not limits.audio:
        raise _refuse("generate_audio", f"{model} does not generate audio")
    gemini = settings.mode == "gemini"
    # The Gemini API takes no audio switch: audio models always speak there.
    if gemini and request.generate_audio is False and limits.audio:
        raise _refuse("generate_audio", f"cannot be turned off for {model} in gemini mode")
    if request.seed is None:
        return
    if gemini:
        raise _refuse("seed", "supported in vertex mode only")
    if not 0 <= request.seed <= _SEED_MAX:
        raise _refuse("seed", f"must be between 0 and {_SEED_MAX}")
