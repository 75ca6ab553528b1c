"""One JSON error shape for every failure: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from flowboard.api.endpoint import Handler
from flowboard.db.outage import is_outage
from flowboard.errors import ErrorAnswer, FlowboardError
from flowboard.keys import DATABASE_HEALTH, SETTINGS

_LOGGER = logging.getLogger(__name__)


class ApiError(FlowboardError):
    """An error answer with an HTTP status, a stable code and a message."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def answer(self) -> ErrorAnswer:
        return ErrorAnswer(self.status, self.code, self.message, self.details)


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return web.json_response(body, status=status, headers=headers)


def validation_details(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the input echo (it may be large or secret)."""
    return [
        {"loc": [str(p) for p in item["loc"]], "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def validation_message(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
    507: "insufficient_storage",
}


def _from_domain(exc: Exception) -> web.Response | None:
    """The answer to a Flowboard error (its own `answer()`) or to a pydantic one."""
    if isinstance(exc, FlowboardError):
        answer = exc.answer()
        return error_response(answer.status, answer.code, answer.message, answer.details)
    if isinstance(exc, ValidationError):
        return error_response(422, "invalid", validation_message(exc), validation_details(exc))
    return None


def _database_unavailable(request: web.Request, exc: Exception) -> web.Response:
    """A dead or hung database: 503 with Retry-After, never a 500 (nor a traceback)."""
    health = request.app.get(DATABASE_HEALTH)
    if health is not None:
        health.mark_down(exc)  # logged once per outage, by the health watcher's state
    _LOGGER.debug("database unavailable", extra={"path": request.path, "error": str(exc)})
    retry_after = request.app[SETTINGS].database.retry_after_seconds
    return error_response(
        503,
        "database_unavailable",
        "the database is not answering; try again shortly",
        headers={"Retry-After": str(retry_after)},
    )


def _from_http(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc  # redirects and the like pass through
    code = _HTTP_CODES.get(exc.status, "http_error")
    message = exc.reason if exc.text is None or exc.text.startswith(str(exc.status)) else exc.text
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    return error_response(exc.status, code, message, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception into the JSON error shape; never leak a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return _from_http(exc)
    except Exception as exc:
        mapped = _from_domain(exc)
        if mapped is not None:
            return mapped
        if is_outage(exc):
            return _database_unavailable(request, exc)
        _LOGGER.exception("unhandled error", extra={"path": request.path})
        return error_response(500, "internal", "internal server error")
