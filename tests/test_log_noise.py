"""No client can write log faster than a bounded rate: malformed requests, refused tokens."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from flowboard.log_throttle import LogThrottle
from tests.servers.serve_process import ServeProcess

COUNT = 2_000
MAX_GROWTH = 20 * 1024


async def _malformed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /\x00bad HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        answer = await reader.read()  # the server answers 400 and closes
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.0 400 Bad Request"), answer[:80]


async def _in_parallel(calls: int, make: Callable[[], Awaitable[None]], width: int = 16) -> None:
    gate = asyncio.Semaphore(width)

    async def one() -> None:
        async with gate:
            await make()

    await asyncio.gather(*(one() for _ in range(calls)))


def _settled_size(serve: ServeProcess) -> int:
    """The log's size once it stopped growing (lines are written as they happen)."""
    size = -1
    while size != (size := serve.log.stat().st_size):
        time.sleep(0.3)
    return size


async def test_2000_malformed_requests_grow_the_log_by_under_20_kb(
    serve_process: ServeProcess,
) -> None:
    serve_process.start()
    before = _settled_size(serve_process)
    await _in_parallel(COUNT, lambda: _malformed(serve_process.port))
    growth = _settled_size(serve_process) - before
    assert 0 < growth < MAX_GROWTH, growth  # the first few are logged, one by one


async def test_2000_refused_tokens_grow_the_log_by_under_20_kb(
    serve_process: ServeProcess,
) -> None:
    serve_process.env["FLOWBOARD_AUTH__ENABLED"] = "true"
    serve_process.start()
    before = _settled_size(serve_process)
    headers = {"Authorization": "Bearer fb_not_a_token"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def refused() -> None:
            async with session.get(f"{serve_process.url}/api/creative-flowboard/flows") as resp:
                assert resp.status == 401

        await _in_parallel(COUNT, refused)
    growth = _settled_size(serve_process) - before
    assert 0 < growth < MAX_GROWTH, growth


def test_a_throttle_writes_the_first_lines_then_one_count_a_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttle = LogThrottle(logging.getLogger("flowboard.test"), "bad things", clock=lambda: now[0])
    assert [throttle.allow() for _ in range(8)] == [True] * 5 + [False] * 3
    assert not caplog.records  # held, not written yet
    now[0] = 61.0
    assert throttle.allow()  # a new window: this one is written again
    summary = [r.getMessage() for r in caplog.records]
    assert summary == ["3 more bad things in the last 61 s, not logged one by one"]
