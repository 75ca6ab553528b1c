"""The google-genai client and credentials behind the Veo provider, built on first use."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import google.auth
from google.auth.credentials import Credentials as AuthCredentials
from google.auth.transport.requests import Request as AuthRequest
from google.genai import Client, types
from google.genai import errors as genai_errors
from google.genai.client import AsyncClient
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import service_account

from flowboard.config import VeoSettings
from flowboard.providers.base import ErrorCode, PermanentProviderError, TransientProviderError
from flowboard.providers.veo_errors import CALL_ERRORS, provider_error
from flowboard.providers.veo_models import check_credentials, is_express

_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
_GEMINI_URL = "https://generativelanguage.googleapis.com"
_VERTEX_GLOBAL_URL = "https://aiplatform.googleapis.com"
_STORAGE_URL = "https://storage.googleapis.com"
_READ_BUFSIZE = 2**22  # what the SDK's own session uses, for large inline results


def env_proxy(url: str) -> str | None:
    """Return the proxy the environment sets for `url` (HTTPS_PROXY, https_proxy, NO_PROXY …).

    Read once per client: aiohttp's trust_env would read the environment and ~/.netrc
    again in a worker thread on every request, the biggest CPU cost of a poll.
    """
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme) or None


class VeoClient:
    """Own one SDK client (Gemini API key or Vertex credentials) and the raw cancel call."""

    def __init__(self, settings: VeoSettings, request_timeout_seconds: float) -> None:
        self._settings = settings
        self._timeout = request_timeout_seconds
        self._client: Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._proxy = env_proxy(self._rest_base())
        self._credentials: AuthCredentials | None = None
        self._lock = asyncio.Lock()
        self._poll_timeout = aiohttp.ClientTimeout(total=request_timeout_seconds)

    async def aio(self) -> AsyncClient:
        """Return the async SDK client, building it on first use."""
        async with self._lock:
            if self._client is None:
                self._client = await self._build()
            return self._client.aio

    async def close(self) -> None:
        """Close the SDK client and our connections; a later call builds new ones."""
        client, self._client = self._client, None
        session, self._session = self._session, None
        if client is not None:
            await client.aio.aclose()  # leaves our session (aiohttp_client) alone
            client.close()  # the SDK also builds a sync client; it holds no connections
        if session is not None:
            await session.close()

    async def post_cancel(self, operation_id: str) -> int:
        """POST {name}:cancel (not in the SDK, unconfirmed upstream); return the status."""
        version = "v1beta" if self._settings.mode == "gemini" else "v1beta1"
        url = f"{self._rest_base()}/{version}/{operation_id}:cancel"
        headers = await self._auth_headers()
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        # A session of its own: a pooled connection the service has since closed would
        # fail this one-shot POST, and cancels are rare.
        async with (
            aiohttp.ClientSession(timeout=timeout, proxy=self._proxy) as session,
            session.post(url, headers=headers, json={}) as response,
        ):
            return response.status

    async def fetch_operation(self, operation_id: str) -> dict[str, Any]:
        """Poll once with one plain request; return the operation's JSON as the API sent it.

        What `operations.get` sends (Gemini: GET {name}; Vertex: POST
        {model}:fetchPredictOperation), without building its request and response models
        for every poll of a running operation: the caller has the SDK read the answer only
        once it is done. A non-200 answer raises the SDK's own APIError.
        """
        base = self._rest_base()
        headers = await self._auth_headers()
        session = self._http()
        if self._settings.mode == "gemini":
            call = session.get(f"{base}/v1beta/{operation_id}", headers=headers,
                               timeout=self._poll_timeout)  # fmt: skip
        else:
            resource = operation_id.rpartition("/operations/")[0]
            url = f"{base}/v1beta1/{resource}:fetchPredictOperation"
            body = {"operationName": operation_id}
            call = session.post(url, json=body, headers=headers, timeout=self._poll_timeout)
        async with call as response:
            await genai_errors.APIError.raise_for_async_response(response)
            try:
                answer = await response.json(content_type=None)
            except ValueError as error:
                raise TransientProviderError(f"Veo poll answer unreadable: {error}") from error
        if not isinstance(answer, dict):
            raise TransientProviderError("Veo poll answer is not a JSON object")
        return answer

    def _http(self) -> aiohttp.ClientSession:
        """Return the SDK's aiohttp session, made on the running loop."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # No connection limit, as the SDK's own session: a poll never queues here.
                connector=aiohttp.TCPConnector(limit=0),
                proxy=self._proxy,
                trust_env=False,  # see env_proxy(); netrc auth is never wanted here
                read_bufsize=_READ_BUFSIZE,
            )
        return self._session

    async def _build(self) -> Client:
        settings = self._settings
        check_credentials(settings)  # follow() and cancel() come here without validate()
        http_options = types.HttpOptions(
            base_url=settings.base_url or None,
            timeout=int(self._timeout * 1000),
            # Our tenacity policy is the only retry; the SDK's would resend POSTs silently.
            retry_options=types.HttpRetryOptions(attempts=1),
            aiohttp_client=self._http(),
        )
        if settings.mode == "gemini":
            return Client(api_key=settings.api_key, http_options=http_options)
        if is_express(settings):
            # No project or location: the SDK sends the key and drops them from paths.
            return Client(vertexai=True, api_key=settings.api_key, http_options=http_options)
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
        if settings.location == "global" or is_express(settings):
            return _VERTEX_GLOBAL_URL
        return f"https://{settings.location}-aiplatform.googleapis.com"

    def storage_base(self) -> str:
        """Return the Cloud Storage JSON API endpoint (Vertex results written to a bucket).

        A custom `base_url` (a proxy, a test server) serves storage too unless
        `storage_base_url` says otherwise: nothing then goes to Google by surprise.
        """
        settings = self._settings
        return (settings.storage_base_url or settings.base_url or _STORAGE_URL).rstrip("/")

    def http(self) -> aiohttp.ClientSession:
        """Return our pooled session (the SDK's), for calls the SDK does not make."""
        return self._http()

    async def auth_headers(self) -> dict[str, str]:
        """Return the headers that authenticate one raw call in the configured mode."""
        return await self._auth_headers()

    async def _auth_headers(self) -> dict[str, str]:
        if self._settings.mode == "gemini" or is_express(self._settings):
            return {"x-goog-api-key": self._settings.api_key}
        credentials = await self._vertex_credentials()
        if not credentials.valid:
            await asyncio.to_thread(credentials.refresh, AuthRequest())
        return {"Authorization": f"Bearer {credentials.token}"}
