"""A Veo run (the Veo fake behind the real google-genai SDK) seen in the page: its progress
is a guess from elapsed time, and the page marks it as estimated."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from flowboard.app import create_app
from tests.browser.canvas import base_url, make_flow, open_canvas, token_of
from tests.fakes.veo import FakeVeo, Outcome, Script
from tests.servers.app import AppClient, MakeSettings

READY = """() => {
  const video = document.querySelector('.node[data-node-type="generated_asset"] video');
  return video !== null && video.readyState >= 2 && video.duration > 0;
}"""


@pytest.fixture
async def fake_veo() -> AsyncIterator[FakeVeo]:
    async with FakeVeo() as server:
        yield server


@pytest.fixture
async def veo_app(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings, fake_veo: FakeVeo
) -> AppClient:
    veo = {
        "mode": "gemini",
        "api_key": fake_veo.api_key,
        "base_url": fake_veo.base_url,
        "first_poll_seconds": 0.05,
        "poll_interval_seconds": 0.1,
        "poll_max_seconds": 0.2,
        "typical_seconds": 1.0,
    }
    settings = make_settings(
        providers={"veo": veo},
        execution={"estimated_progress_interval_seconds": 0.05, "estimated_progress_step": 5.0},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


async def test_estimated_progress_is_marked_and_the_veo_video_plays(
    browser: Browser, veo_app: AppClient, fake_veo: FakeVeo, artifacts: Path
) -> None:
    fake_veo.default_script = Script(Outcome.SUCCESS, polls_until_done=3, seconds_until_done=2.0)
    node = {"id": "clip", "type": "video_gen", "data": {"prompt": "a lighthouse at dusk"}}
    flow = await make_flow(veo_app, "Veo", [node])
    canvas = await open_canvas(browser, base_url(veo_app), token_of(veo_app))
    await canvas.open_flow(flow["id"])
    clip = canvas.node("clip")

    await clip.get_by_text("More fields").click()
    provider = clip.locator('[data-field="provider"]')  # a field of the API's schema
    await provider.fill("veo")
    await provider.press("Tab")
    await expect(canvas.page.locator(".board")).to_have_attribute("data-revision", "2")

    await clip.get_by_role("button", name="Run").click()
    await expect(clip.locator(".percent")).to_contain_text("estimated", timeout=15_000)
    bar = clip.locator("progress")
    await expect(bar).to_have_attribute("data-estimated", "true")
    await expect(bar).to_have_attribute("aria-valuetext", re.compile(r"^\d+% \(estimated\)$"))
    await canvas.page.screenshot(path=artifacts / "estimated.png")

    await expect(clip.locator(".status")).to_have_text("completed", timeout=30_000)
    video = canvas.page.locator('.node[data-node-type="generated_asset"] video')
    await expect(video).to_have_count(1)
    await canvas.page.wait_for_function(READY, timeout=30_000)
    assert len(fake_veo.starts) == 1  # the page's run went to Veo (the fake)
    assert canvas.unexpected_errors() == []


@pytest.fixture
async def queued_app(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings, fake_veo: FakeVeo
) -> AppClient:
    veo = {"mode": "gemini", "api_key": fake_veo.api_key, "base_url": fake_veo.base_url}
    settings = make_settings(
        providers={"veo": veo},
        queue={"limits": {"veo": 1}},
        server={"shutdown_grace_seconds": 0.1},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


async def test_a_task_waiting_for_a_provider_slot_shows_its_place(
    browser: Browser, queued_app: AppClient, fake_veo: FakeVeo, artifacts: Path
) -> None:
    fake_veo.default_script = Script(Outcome.NEVER)  # the first take holds Veo's one slot
    data = {"prompt": "a lighthouse at dusk", "provider": "veo"}
    nodes = [
        {"id": name, "type": "video_gen", "data": data, "position": {"x": x, "y": 40}}
        for name, x in (("first", 40), ("second", 400))
    ]
    flow = await make_flow(queued_app, "Queue", nodes)
    canvas = await open_canvas(browser, base_url(queued_app), token_of(queued_app))
    await canvas.open_flow(flow["id"])

    await canvas.node("first").get_by_role("button", name="Run").click()
    await expect(canvas.node("first").locator(".status")).to_have_text("processing")
    second = canvas.node("second")
    await second.get_by_role("button", name="Run").click()

    await expect(second.locator(".status")).to_have_text(re.compile(r"^queued #1(, ~\d+ s)?$"))
    await expect(second.get_by_role("button", name="Cancel")).to_be_visible()
    await canvas.page.screenshot(path=artifacts / "queued.png")
    await second.get_by_role("button", name="Cancel").click()
    await expect(second.locator(".status")).to_have_text("cancelled")
    assert len(fake_veo.starts) == 1  # the waiting take never reached Veo
    assert canvas.unexpected_errors() == []
