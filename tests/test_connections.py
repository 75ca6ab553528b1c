"""The guarded listener over real sockets: head deadline, per-address cap, malformed
requests in the log, and event streams released the moment their connection closes."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from flowboard.keys import HUB
from tests.servers.live import LiveServer, StartLive

API = "/api/creative-flowboard"


async def _open(live: LiveServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(live.host, live.port)


async def _answer(reader: asyncio.StreamReader, within: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), within)


async def _healthz(live: LiveServer) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{live.url}/healthz") as resp:
        return resp.status


async def test_slow_heads_are_closed_after_the_header_timeout(live_server: StartLive) -> None:
    live = await live_server(server={"header_timeout_seconds": 0.5})
    slow = [await _open(live) for _ in range(20)]
    started = time.monotonic()
    for _, writer in slow:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never ends its head
    assert await _healthz(live) == 200  # a normal client is served meanwhile
    for _, writer in slow:
        writer.write(b"X-Drip: 1\r\n")  # dribbling does not extend the deadline
    answers = [await _answer(reader, 3.0) for reader, _ in slow]
    waited = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[0]
    assert 0.4 < waited < 2.5
    assert live.site.limits.timed_out == 20 and live.site.limits.connections() == 0
    for _, writer in slow:
        writer.close()


async def test_a_complete_head_is_not_timed_out(live_server: StartLive) -> None:
    """A request whose head arrived may take longer than the head deadline (a stream)."""
    live = await live_server(server={"header_timeout_seconds": 0.3})
    reader, writer = await _open(live)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r")
    await asyncio.sleep(0.1)
    writer.write(b"\n")  # the head's end split across reads
    await asyncio.sleep(0.6)
    assert b"200 OK" in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert live.site.limits.timed_out == 0
    writer.close()


async def test_connections_per_address_are_capped(live_server: StartLive) -> None:
    live = await live_server(server={"max_connections_per_address": 3})
    held = [await _open(live) for _ in range(3)]
    await asyncio.sleep(0.05)
    reader, writer = await _open(live)
    refused = await _answer(reader, 2.0)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in refused
    writer.close()
    held.pop()[1].close()
    await asyncio.sleep(0.05)
    assert await _healthz(live) == 200  # a place came free
    assert live.site.limits.refused == 1
    for _, held_writer in held:
        held_writer.close()


async def test_a_malformed_request_is_one_warning_line(
    live_server: StartLive, caplog: pytest.LogCaptureFixture
) -> None:
    live = await live_server()
    for raw in (
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    ):
        reader, writer = await _open(live)
        writer.write(raw)
        assert (await _answer(reader, 2.0)).startswith(b"HTTP/1.0 400 ")
        writer.close()
    server_lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server_lines) == 2
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in server_lines)
    assert all("malformed request" in r.getMessage() for r in server_lines)


async def _flow(session: aiohttp.ClientSession, live: LiveServer) -> str:
    async with session.post(f"{live.url}{API}/flows", json={"name": "S"}) as resp:
        flow_id: str = (await resp.json())["id"]
    return flow_id


async def test_a_closed_stream_leaves_its_channel_at_once(live_server: StartLive) -> None:
    live = await live_server(sse={"heartbeat_seconds": 30})
    hub = live.app[HUB]
    async with aiohttp.ClientSession(headers=live.auth) as session:
        flow_id = await _flow(session, live)
        for _ in range(20):
            resp = await session.get(f"{live.url}{API}/subscribe/{flow_id}")
            await resp.content.readuntil(b"\r\n\r\n")  # the snapshot: subscribed
            assert hub.subscriber_count() == 1
            resp.close()
            deadline = time.monotonic() + 1.0
            while hub.subscriber_count() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert hub.subscriber_count() == 0  # not at the next heartbeat, 30 s away
