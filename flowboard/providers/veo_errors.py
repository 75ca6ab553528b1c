"""Map google-genai, google-auth and transport exceptions into Flowboard's provider errors."""

from __future__ import annotations

import aiohttp
import httpx
from google.auth import exceptions as auth_errors
from google.genai import errors as genai_errors

from flowboard.providers.base import (
    ErrorCode,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

# Exceptions a single SDK or HTTP call may raise that `provider_error` knows how to map;
# anything else is a bug and propagates unchanged.
CALL_ERRORS: tuple[type[BaseException], ...] = (
    genai_errors.APIError,
    aiohttp.ClientError,
    httpx.HTTPError,
    auth_errors.GoogleAuthError,
    TimeoutError,
    ConnectionError,
)

# 408 and 429 are 4xx codes that say "later", not "never".
_RETRYABLE_4XX = frozenset({408, 429})
# 4xx answers to a start that blame the request itself (prompt, image, parameters, model).
_REQUEST_FAULTS = frozenset({400, 404, 413, 422})
# ... unless the status or reason says the account or its credentials are at fault.
_ACCOUNT_STATUSES = frozenset({"FAILED_PRECONDITION", "UNAUTHENTICATED", "PERMISSION_DENIED"})
_ACCOUNT_REASONS = ("API_KEY_INVALID", "API_KEY_EXPIRED", "SERVICE_DISABLED", "BILLING")


def provider_error(
    error: BaseException, action: str, *, not_found: ErrorCode = ErrorCode.PROVIDER_ERROR
) -> ProviderError:
    """Return the Transient/Permanent error for one failed `action` (e.g. "start")."""
    if isinstance(error, genai_errors.APIError):
        return _api_error(error, action, not_found)
    if isinstance(error, auth_errors.GoogleAuthError):
        return _auth_error(error, action)
    # Connection resets, refused connections, DNS failures and per-call timeouts.
    detail = str(error) or type(error).__name__
    return TransientProviderError(f"Veo {action} failed: {type(error).__name__}: {detail}")


def _api_error(error: genai_errors.APIError, action: str, not_found: ErrorCode) -> ProviderError:
    status = f" {error.status}" if error.status else ""
    message = f"Veo {action} failed: HTTP {error.code}{status}: {error.message or 'no message'}"
    if error.code >= 500 or error.code in _RETRYABLE_4XX:
        return TransientProviderError(message)
    if action == "start" and _blames_request(error):
        # The API's own words tell the user what to change.
        return PermanentProviderError(ErrorCode.INVALID_REQUEST, message)
    if error.code == 404:
        return PermanentProviderError(not_found, message)
    return PermanentProviderError(ErrorCode.PROVIDER_ERROR, message)


def _auth_error(error: auth_errors.GoogleAuthError, action: str) -> ProviderError:
    message = f"Veo {action} failed: credentials: {type(error).__name__}: {error}"
    # google-auth flags refresh failures it considers worth retrying (network, 5xx).
    if isinstance(error, auth_errors.TransportError) or getattr(error, "retryable", False):
        return TransientProviderError(message)
    return PermanentProviderError(ErrorCode.PROVIDER_ERROR, message)


def _blames_request(error: genai_errors.APIError) -> bool:
    """Whether a refused start is the request's fault rather than the account's."""
    if error.code not in _REQUEST_FAULTS or error.status in _ACCOUNT_STATUSES:
        return False
    details = repr(error.details)
    return not any(reason in details for reason in _ACCOUNT_REASONS)
