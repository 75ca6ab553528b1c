"""Request checks and answer bodies of Google's image endpoints, as google-genai sends them.

Gemini image models: `generateContent` with `generationConfig.responseModalities` holding
IMAGE; the images come back as `inlineData` parts. Imagen: Vertex AI `predict` with
`instances[0].prompt` and `parameters`; the images come back as `predictions`.
See docs/notes/google-image-wire.md for where each fact comes from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from PIL import Image, ImageDraw

from tests.fakes.veo_wire import JSON, ApiError

# Output sizes per aspect ratio, as the models' documentation lists them (1K tier).
GEMINI_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184),
    "4:3": (1184, 864), "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344),
    "16:9": (1344, 768), "21:9": (1536, 672),
}  # fmt: skip
IMAGEN_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "3:4": (896, 1280), "4:3": (1280, 896), "9:16": (768, 1408),
    "16:9": (1408, 768),
}  # fmt: skip
IMAGE_TYPES = ("image/png", "image/jpeg")
# What Vertex AI answers when Imagen's prompt filter refuses a prompt (HTTP 400).
IMAGEN_PROMPT_BLOCKED = (
    "Image generation failed with the following error: The prompt could not be submitted. "
    "This prompt contains sensitive words that violate Google's Responsible AI practices. "
    "Try rephrasing the prompt. If you think this was an error, send feedback. "
    "Support codes: 42876398"
)
IMAGEN_FILTERED_REASON = (
    "Unable to show generated images. All images were filtered out because they violated "
    "Vertex AI's usage guidelines. You will not be charged for blocked images. "
    "Try rephrasing the prompt. If you think this was an error, send feedback. "
    "Support codes: 58061214"
)
_FAILED = "Image generation failed with the following error:"
_SAFETY_CATEGORIES = ["Death, Harm & Tragedy", "Firearms & Weapons", "Hate", "Violence"]
IMAGE_TOKENS = 1290  # output tokens one 1K Gemini image costs


class Outcome(StrEnum):
    """How one generation request is answered."""

    SUCCESS = "success"
    FILTERED = "filtered"  # the output is withheld (finishReason / raiFilteredReason)
    PARTIAL = "partial"  # Imagen: `filtered_count` of the samples withheld, the rest served
    BLOCKED = "blocked"  # the prompt is refused (promptFeedback / HTTP 400 for Imagen)
    EMPTY = "empty"  # Gemini: a text-only answer; Imagen: `{}`


@dataclass(frozen=True)
class Script:
    """The fate of one generation request (one generateContent or predict call)."""

    outcome: Outcome = Outcome.SUCCESS
    delay_seconds: float = 0.0
    finish_reason: str = "IMAGE_SAFETY"
    block_reason: str = "PROHIBITED_CONTENT"
    filtered_count: int = 1
    text: str = "I can't create that image, but here is a description instead."


@dataclass(frozen=True)
class GeminiRequest:
    """What a generateContent body asked for."""

    prompt: str
    images: tuple[tuple[bytes, str], ...]  # (bytes, mime type) of each input image part
    aspect_ratio: str
    seed: int | None
    mime_type: str  # Vertex's imageOutputOptions.mimeType, else image/png


@dataclass(frozen=True)
class ImagenRequest:
    """What a predict body asked for."""

    prompt: str
    aspect_ratio: str
    samples: int
    seed: int | None
    mime_type: str
    rai_reason: bool
    safety_attributes: bool
    size: tuple[int, int]


def _dict(value: Any, where: str) -> JSON:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, f"Invalid value at '{where}': expected an object.")
    return value


def _decode(data: Any, where: str) -> bytes:
    # Proto JSON takes standard or URL-safe base64; google-genai sends inline data URL-safe.
    text = str(data).replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ApiError(
            400, f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed."
        ) from error


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value < 2**32:
        raise ApiError(400, f"Invalid value for seed: {value!r}.")
    return value


def _parts(body: JSON) -> list[JSON]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified")
    parts = _dict(contents[-1], "contents").get("parts")
    if not isinstance(parts, list) or not parts:
        raise ApiError(
            400, "* GenerateContentRequest.contents.parts: contents.parts must not be empty."
        )
    return [_dict(part, "contents.parts") for part in parts]


def _input_image(part: JSON) -> tuple[bytes, str]:
    inline = _dict(part.get("inlineData"), "contents.parts.inline_data")
    # google-genai sends `mime_type` here (a Blob dumped without aliases); proto JSON
    # parsers accept a field's snake_case name as well as its lowerCamel one.
    mime = inline.get("mimeType", inline.get("mime_type"))
    if mime not in (*IMAGE_TYPES, "image/webp"):
        raise ApiError(400, f"Unsupported MIME type: {mime}")
    data = _decode(inline.get("data"), "contents.parts.inline_data.data")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as error:  # Pillow raises many kinds for a bad file
        raise ApiError(
            400, "Unable to process input image. Please retry or report in ..."
        ) from error
    return data, str(mime)


def parse_generate(model: str, body: JSON, vertex: bool) -> GeminiRequest:
    """Check a generateContent body like the service; return what it asks for."""
    config = _dict(body.get("generationConfig"), "generation_config")
    modalities = [str(m).upper() for m in config.get("responseModalities") or ["TEXT"]]
    if "IMAGE" not in modalities or "image" not in model:
        raise ApiError(400, "Model does not support the requested response modalities: image")
    if config.get("candidateCount", 1) != 1:
        raise ApiError(400, f"Multiple candidates is not enabled for models/{model}")
    image_config = _dict(config.get("imageConfig"), "generation_config.image_config")
    aspect = image_config.get("aspectRatio", "1:1")
    if aspect not in GEMINI_SIZES:
        raise ApiError(400, f"Unsupported aspect ratio: {aspect}")
    output = _dict(image_config.get("imageOutputOptions"), "image_config.image_output_options")
    mime = output.get("mimeType", "image/png")
    if mime not in IMAGE_TYPES or (output and not vertex):
        raise ApiError(400, f"Unsupported output MIME type: {mime}")
    texts, images = [], []
    for part in _parts(body):
        if "text" in part:
            texts.append(str(part["text"]))
        elif "inlineData" in part:
            images.append(_input_image(part))
        else:
            raise ApiError(400, "Only text and inline_data parts are supported here.")
    prompt = " ".join(texts).strip()
    if not prompt and not images:
        raise ApiError(
            400, "* GenerateContentRequest.contents.parts: must have a text or an image."
        )
    return GeminiRequest(prompt, tuple(images), aspect, _seed(config.get("seed")), mime)


def parse_predict(model: str, body: JSON) -> ImagenRequest:
    """Check an Imagen predict body like the service; return what it asks for."""
    instances = body.get("instances")
    instance = instances[0] if isinstance(instances, list) and len(instances) == 1 else None
    if not isinstance(instance, dict) or not str(instance.get("prompt") or "").strip():
        raise ApiError(400, f"{_FAILED} prompt is required.")
    params = _dict(body.get("parameters"), "parameters")
    aspect = params.get("aspectRatio", "1:1")
    if aspect not in IMAGEN_SIZES:
        raise ApiError(
            400,
            f"{_FAILED} Unsupported aspect ratio {aspect}.",
        )
    samples = params.get("sampleCount", 4)  # the service's documented default is 4
    if not isinstance(samples, int) or not 1 <= samples <= 4:
        raise ApiError(
            400,
            f"{_FAILED} sampleCount must be 1-4, got {samples}.",
        )
    if "negativePrompt" in params and not model.startswith(
        ("imagen-3.0-generate-001", "imagen-3.0-fast")
    ):
        raise ApiError(400, f"Negative prompt is not supported for {model}.")
    seed = _seed(params.get("seed"))
    if seed is not None and params.get("addWatermark", True):
        raise ApiError(
            400,
            f"{_FAILED} Seed is not supported when watermark is enabled.",
        )
    mime = _dict(params.get("outputOptions"), "parameters.outputOptions").get(
        "mimeType", "image/png"
    )
    if mime not in IMAGE_TYPES:
        raise ApiError(400, f"Unsupported output MIME type: {mime}")
    width, height = IMAGEN_SIZES[aspect]
    scale = {"1K": 1, "2K": 2}.get(str(params.get("sampleImageSize", "1K")))
    if scale is None:
        raise ApiError(400, f"Unsupported sampleImageSize: {params.get('sampleImageSize')}")
    return ImagenRequest(
        prompt=str(instance["prompt"]), aspect_ratio=aspect, samples=samples, seed=seed,
        mime_type=mime, rai_reason=bool(params.get("includeRaiReason")),
        safety_attributes=bool(params.get("includeSafetyAttributes")),
        size=(width * scale, height * scale),
    )  # fmt: skip


def render(size: tuple[int, int], mime_type: str, key: str) -> bytes:
    """Encode a real PNG/JPEG of `size` whose colours follow `key` (prompt, seed, index)."""
    digest = hashlib.sha256(key.encode()).digest()
    image = Image.new("RGB", size, (digest[0], digest[1], digest[2]))
    width, height = size
    ImageDraw.Draw(image).rectangle(
        (width // 4, height // 4, 3 * width // 4, 3 * height // 4),
        fill=(digest[3], digest[4], digest[5]),
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if mime_type == "image/jpeg" else "PNG")
    return buffer.getvalue()


def usage(prompt_tokens: int, images: int) -> JSON:
    """Return generateContent's usageMetadata for a prompt and `images` output images."""
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": images * IMAGE_TOKENS,
        "totalTokenCount": prompt_tokens + images * IMAGE_TOKENS,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": images * IMAGE_TOKENS}],
    }


def safety_attributes(content_type: str | None = None) -> JSON:
    """Return an Imagen prediction's rounded safety attributes."""
    scores = [0.1, 0.1, 0.1, 0.1]
    out: JSON = {"safetyAttributes": {"categories": _SAFETY_CATEGORIES, "scores": scores}}
    if content_type is not None:
        out["contentType"] = content_type
    return out
