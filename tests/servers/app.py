"""The real Flowboard app wired to the real test database, and a helper to read its SSE."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from flowboard.app import create_app
from flowboard.config import Settings

AppClient = TestClient[Any, Any]
MakeSettings = Callable[..., Settings]


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
    """A client of the real app with default settings."""
    result: AppClient = await aiohttp_client(create_app(make_settings()))
    return result


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
