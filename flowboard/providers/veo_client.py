"""The google-genai client and credentials behind the Veo provider, built on first use."""

from __future__ import annotations

import asyncio

import aiohttp
import google.auth
from google.auth.credentials import Credentials as AuthCredentials
from google.auth.transport.requests import Request as AuthRequest
from google.genai import Client, types
from google.genai.client import AsyncClient
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import service_account

from flowboard.config import VeoSettings
from flowboard.providers.base import ErrorCode, PermanentProviderError
from flowboard.providers.veo_errors import CALL_ERRORS, provider_error
from flowboard.providers.veo_models import check_credentials

_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_GEMINI_URL = "https://generativelanguage.googleapis.com"


class VeoClient:
    """Own one SDK client (Gemini API key or Vertex credentials) and the raw cancel call."""

    def __init__(self, settings: VeoSettings, request_timeout_seconds: float) -> None:
        self._settings = settings
        self._timeout = request_timeout_seconds
        self._client: Client | None = None
        self._credentials: AuthCredentials | None = None
        self._lock = asyncio.Lock()

    async def aio(self) -> AsyncClient:
        """Return the async SDK client, building it on first use."""
        async with self._lock:
            if self._client is None:
                self._client = await self._build()
            return self._client.aio

    async def close(self) -> None:
        """Close the SDK client's connections; a later call builds a new client."""
        client, self._client = self._client, None
        if client is not None:
            await client.aio.aclose()
            client.close()  # the SDK also builds a sync client; it holds no connections

    async def post_cancel(self, operation_id: str) -> int:
        """POST {name}:cancel (not in the SDK, unconfirmed upstream); return the status."""
        version = "v1beta" if self._settings.mode == "gemini" else "v1beta1"
        url = f"{self._rest_base()}/{version}/{operation_id}:cancel"
        headers = await self._auth_headers()
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, headers=headers, json={}) as response,
        ):
            return response.status

    async def _build(self) -> Client:
        settings = self._settings
        check_credentials(settings)  # follow() and cancel() come here without validate()
        http_options = types.HttpOptions(
            base_url=settings.base_url or None,
            timeout=int(self._timeout * 1000),
            # Our tenacity policy is the only retry; the SDK's would resend POSTs silently.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if settings.mode == "gemini":
            return Client(api_key=settings.api_key, http_options=http_options)
        return Client(
            vertexai=True,
            project=settings.project,
            location=settings.location,
            credentials=await self._vertex_credentials(),
            http_options=http_options,
        )

    async def _vertex_credentials(self) -> AuthCredentials:
        if self._credentials is None:
            try:
                # Key files and ADC discovery read disks (and maybe a metadata server).
                self._credentials = await asyncio.to_thread(self._load_credentials)
            except CALL_ERRORS as error:
                raise provider_error(error, "authentication") from error
            except (OSError, ValueError) as error:  # an unreadable or malformed key file
                message = f"Veo credentials_file unusable: {error}"
                raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, message) from error
        return self._credentials

    def _load_credentials(self) -> AuthCredentials:
        settings = self._settings
        if settings.access_token:
            # A token without expiry is used as is and never refreshed.
            return oauth2_credentials.Credentials(token=settings.access_token)  # type: ignore[no-untyped-call]
        if settings.credentials_file:
            file = settings.credentials_file
            loaded: AuthCredentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                file, scopes=_SCOPES
            )
            return loaded
        credentials, _ = google.auth.default(scopes=_SCOPES)
        return credentials

    def _rest_base(self) -> str:
        settings = self._settings
        if settings.base_url:
            return settings.base_url.rstrip("/")
        if settings.mode == "gemini":
            return _GEMINI_URL
        if settings.location == "global":
            return "https://aiplatform.googleapis.com"
        return f"https://{settings.location}-aiplatform.googleapis.com"

    async def _auth_headers(self) -> dict[str, str]:
        if self._settings.mode == "gemini":
            return {"x-goog-api-key": self._settings.api_key}
        credentials = await self._vertex_credentials()
        if not credentials.valid:
            await asyncio.to_thread(credentials.refresh, AuthRequest())
        return {"Authorization": f"Bearer {credentials.token}"}
