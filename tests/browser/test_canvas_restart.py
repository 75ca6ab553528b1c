"""The page outlives a restart of `flowboard serve`: it reconnects and shows the server's flow."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from playwright.async_api import Browser, expect

from tests.browser.canvas import API, open_canvas
from tests.servers.serve_process import ServeProcess

# auth is off in this fixture (tests/test_auth.py covers it): any token signs in
TOKEN = "restart-test"


async def _call(serve: ServeProcess, method: str, path: str, body: Any) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{serve.url}{API}{path}", json=body) as resp,
    ):
        assert resp.status < 300, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer


async def test_the_page_recovers_from_a_server_restart(
    browser: Browser, serve_process: ServeProcess
) -> None:
    await asyncio.to_thread(serve_process.start)
    nodes = [{"id": "words", "type": "prompt"}, {"id": "clip", "type": "video_gen"}]
    flow = await _call(serve_process, "POST", "/flows", {"name": "Restarted", "nodes": nodes})
    canvas = await open_canvas(browser, f"{serve_process.url}/", TOKEN)
    await canvas.open_flow(flow["id"])

    await asyncio.to_thread(serve_process.stop)
    await expect(canvas.page.locator(".link")).not_to_have_attribute("data-state", "live")
    await asyncio.to_thread(serve_process.start)
    path = f"/flows/{flow['id']}"
    await _call(serve_process, "POST", f"{path}/nodes", {"id": "after", "type": "prompt"})
    await _call(serve_process, "PATCH", f"{path}/nodes/clip", {"position": {"x": 400, "y": 90}})

    await canvas.wait_live()
    await expect(canvas.node("after")).to_be_visible()
    await expect(canvas.node("clip")).to_have_attribute("data-x", "400")
    fresh = await open_canvas(browser, f"{serve_process.url}/", TOKEN)
    await fresh.open_flow(flow["id"])
    assert await canvas.rendered() == await fresh.rendered()
    # while the server was down the browser logged its failed connections, nothing else
    assert canvas.unexpected_errors(r"net::ERR_") == [] and fresh.unexpected_errors() == []
