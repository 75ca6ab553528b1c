"""Error codes shared by every layer, and the base of refusals that answer 422.

The engine, the processors and the providers raise these; `api/errors.py` maps them
to HTTP. Nothing here imports another Flowboard module, so every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Stable codes recorded on failed assets and tasks, and sent in 422 answers."""

    INVALID_REQUEST = "invalid_request"
    PROVIDER_ERROR = "provider_error"
    CONTENT_FILTERED = "content_filtered"
    EMPTY_RESULT = "empty_result"
    LOST_BY_PROVIDER = "lost_by_provider"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    UNAVAILABLE = "provider_unavailable"
    INPUT_MISSING = "input_missing"
    UPSTREAM_FAILED = "upstream_failed"
    STORAGE_ERROR = "storage_error"
    STORAGE_FULL = "storage_full"
    INTERNAL = "internal"
    NODE_REMOVED = "node_removed"
    HANDLER_FAILED = "handler_failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    INVALID_URL = "invalid_url"


@dataclass(frozen=True)
class ErrorAnswer:
    """What an API caller is told: the HTTP status and the JSON error's fields."""

    status: int
    code: str
    message: str
    details: Any = None


class FlowboardError(Exception):
    """The root of every error an API caller is answered with: an HTTP status and a code.

    `api/errors.py` maps any of them to JSON with one lookup, `answer()`; a subclass sets
    `http_status` and `error_code`, and overrides `answer()` only for a message or
    details of its own.
    """

    http_status: ClassVar[int] = 500
    error_code: ClassVar[str] = "internal"

    def answer(self) -> ErrorAnswer:
        return ErrorAnswer(self.http_status, self.error_code, str(self))


class CodedError(Exception):
    """An error carrying one of ErrorCode and a message fit to show a user."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidRequest(CodedError, FlowboardError):
    """A request refused before anything starts: the caller gets 422 with `code`."""

    http_status = 422

    def __init__(self, message: str, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> None:
        super().__init__(code, message)

    def answer(self) -> ErrorAnswer:
        return ErrorAnswer(self.http_status, self.code.value, self.message)


class StaleWrite(Exception):
    """A compare-and-swap write lost: the record changed since it was read.

    Raised when another writer (another process on the same database) changed the
    record underneath: the change that was being written is dropped, not merged.
    """

    def __init__(self, collection: str, record_id: str, expected_version: int) -> None:
        super().__init__(
            f"{collection} {record_id} is no longer at version {expected_version}: "
            "changed by another writer"
        )
        self.collection = collection
        self.record_id = record_id
        self.expected_version = expected_version
