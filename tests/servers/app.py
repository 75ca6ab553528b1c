"""The real Flowboard app wired to the real test database, and a helper to read its SSE."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, hdrs, web
from aiohttp.test_utils import BaseTestServer, TestClient

from flowboard.app import create_app
from flowboard.canvas.model import DEFAULT_ORG
from flowboard.config import Settings
from flowboard.keys import AUTH, SETTINGS

AppClient = TestClient[Any, Any]
MakeSettings = Callable[..., Settings]
MakeClient = Callable[..., Awaitable[AppClient]]
OTHER_ORG = "org-b"


async def create_token(app: web.Application, org: str, name: str = "tests") -> str:
    """A new API token of `org`, made through the app's real token store."""
    return (await app[AUTH].tokens.create(org, name)).plain


class FlowboardClient(TestClient[Any, Any]):
    """A TestClient that calls a Flowboard app (auth on) as a fresh API token of `org`.

    org: the organisation to authenticate as; None sends no Authorization header.
    borrowed: the server belongs to another client: closing this one leaves it running.
    """

    def __init__(
        self,
        server: BaseTestServer,
        *,
        org: str | None = DEFAULT_ORG,
        borrowed: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(server, **kwargs)
        self.org = org
        self.token: str | None = None
        self._borrowed = borrowed

    async def start_server(self) -> None:
        await super().start_server()
        app = self.app
        if self.org is None or not isinstance(app, web.Application) or AUTH not in app:
            return
        if app[SETTINGS].auth.enabled:
            self.token = await create_token(app, self.org)
            self.session.headers[hdrs.AUTHORIZATION] = f"Bearer {self.token}"

    async def close(self) -> None:
        if not self._borrowed:
            await super().close()
        elif not self.session.closed:
            await self.session.close()


@pytest.fixture
def aiohttp_client_cls() -> type[AppClient]:
    """Every `aiohttp_client(create_app(...))` calls as a token of the default organisation."""
    return FlowboardClient


@pytest.fixture
def make_settings(mongo_server: str, mongo_db_name: str, tmp_path: Path) -> MakeSettings:
    """Settings on the test database and a private data dir; keyword sections override."""

    def build(**sections: Any) -> Settings:
        raw: dict[str, Any] = {
            "data_dir": str(tmp_path / "data"),
            "database": {"uri": mongo_server, "name": mongo_db_name},
            "logging": {"format": "text"},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return Settings.model_validate(raw)

    return build


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], make_settings: MakeSettings) -> AppClient:
    """A client of the real app with default settings, authenticated for the default org."""
    result: AppClient = await aiohttp_client(create_app(make_settings()))
    return result


@pytest.fixture
async def client_as(client: AppClient) -> AsyncIterator[MakeClient]:
    """More clients of `client`'s running app: as a new token of `org`, plus any `headers`."""
    made: list[FlowboardClient] = []

    async def make(org: str | None = None, headers: Mapping[str, str] | None = None) -> AppClient:
        extra = FlowboardClient(client.server, org=org, borrowed=True, headers=headers)
        made.append(extra)
        await extra.start_server()
        return extra

    yield make
    for extra in made:
        await extra.close()


@pytest.fixture
async def other_client(client_as: MakeClient) -> AppClient:
    """A client of the same app, authenticated for a second organisation."""
    return await client_as(OTHER_ORG)


class SseReader:
    """Read `text/event-stream` frames from a live response."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response

    async def next(self) -> dict[str, Any]:
        """The next event (comments skipped) as {id, event, data}."""
        frame: dict[str, Any] = {}
        async for raw in self.response.content:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if frame:
                    return frame
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(": ")
            frame[field] = json.loads(value) if field == "data" else value
        raise EOFError("stream ended")

    async def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        while True:
            frame = await self.next()
            if predicate(frame):
                return frame


@pytest.fixture
def sse() -> Callable[[ClientResponse], SseReader]:
    return SseReader


@pytest.fixture(autouse=True)
def _fail_on_unexpected_errors(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Fail a test whose run logged an unexpected exception from flowboard."""
    caplog.set_level(logging.INFO)
    yield
    if request.node.get_closest_marker("allow_errors"):
        return
    bad = [
        r
        for r in caplog.get_records("call")
        if r.name.startswith("flowboard") and r.levelno >= logging.ERROR and r.exc_info
    ]
    assert not bad, f"unexpected exception logged: {bad[0].getMessage()}"


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])
