"""Google's JSON wire conventions for the fake Veo service: error bodies, request checks."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from tests.fakes.veo_media import FRAME_SIZES

JSON = dict[str, Any]

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip
_STATUS_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}


def injected_message(status: int) -> str:
    """Return the message Google sends with an HTTP `status` it chose to fail with."""
    return _STATUS_MESSAGES.get(status, "Injected failure.")


class ApiError(Exception):
    """An error the fake answers with Google's JSON error body."""

    def __init__(self, code: int, message: str, details: list[JSON] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details

    def response(self) -> web.Response:
        """Render as {"error": {"code", "message", "status"[, "details"]}}."""
        error: JSON = {"code": self.code, "message": self.message}
        error["status"] = _STATUS_NAMES.get(self.code, "UNKNOWN")
        if self.details:
            error["details"] = self.details
        return web.json_response({"error": error}, status=self.code)


async def json_body(request: web.Request) -> JSON:
    """Return the request's JSON object, or fail with 400 like the service."""
    try:
        body = await request.json()
    except ValueError as error:
        raise ApiError(400, f"Invalid JSON payload received. {error}") from error
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    return body


def validate_start(body: JSON) -> tuple[str, int, int, str | None]:
    """Check a start body like the service; return aspect, seconds, samples, storage URI."""
    instances = body.get("instances")
    instance = instances[0] if isinstance(instances, list) and len(instances) == 1 else None
    if not isinstance(instance, dict):
        raise ApiError(400, "instances must hold exactly one instance.")
    if not instance.get("prompt") and "image" not in instance:
        raise ApiError(400, "A prompt or an image is required.")
    if "image" in instance:
        _validate_image(instance["image"])
    params = body.get("parameters") or {}
    aspect = params.get("aspectRatio", "16:9")
    if aspect not in FRAME_SIZES:
        raise ApiError(400, f"Unsupported aspect ratio: {aspect}. Use 16:9 or 9:16.")
    seconds = params.get("durationSeconds", 8)
    if not isinstance(seconds, int) or not 4 <= seconds <= 8:
        raise ApiError(400, f"The duration must be between 4 and 8 seconds, got {seconds}.")
    samples = params.get("sampleCount", 1)
    if not isinstance(samples, int) or not 1 <= samples <= 4:
        raise ApiError(400, f"sampleCount must be between 1 and 4, got {samples}.")
    return aspect, seconds, samples, params.get("storageUri")


def _validate_image(image: Any) -> None:
    if not isinstance(image, dict) or image.get("mimeType") not in ("image/png", "image/jpeg"):
        raise ApiError(400, "image needs bytesBase64Encoded and an image/png|jpeg mimeType.")
    try:
        base64.b64decode(str(image.get("bytesBase64Encoded", "")), validate=True)
    except binascii.Error as error:
        raise ApiError(400, "image.bytesBase64Encoded is not valid base64.") from error
