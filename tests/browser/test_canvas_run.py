"""Build [image asset → video_gen] in the page, run it with the local provider, watch it
live on two pages, and play the result inline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, FilePayload, expect

from tests.browser.canvas import (
    API,
    CanvasPage,
    base_url,
    open_canvas,
    png_bytes,
    token_of,
)
from tests.servers.app import AppClient

DURATION = 3
VIDEO_READY = """(id) => {
  const video = document.querySelector(`.node[data-node-id="${id}"] video`);
  return video !== null && video.readyState >= 2 && Number.isFinite(video.duration);
}"""


async def _build_in_page(canvas: CanvasPage) -> tuple[str, str, str]:
    """Create a flow, upload an image (file picker), add a video node, wire them."""
    page = canvas.page
    await page.get_by_label("New flow name").fill("Lighthouse")
    await page.get_by_role("button", name="Create flow").click()
    await canvas.wait_live()
    flow_id = page.url.rsplit("flow=", 1)[1]
    async with page.expect_file_chooser() as chooser:
        await page.get_by_role("button", name="Add image…").click()
    picker = await chooser.value
    await picker.set_files(FilePayload(name="photo.png", mimeType="image/png", buffer=png_bytes()))
    image = page.locator('.node[data-node-type="asset"]')
    await expect(image.locator("img")).to_be_visible()
    await page.get_by_role("button", name="Add video gen").click()
    video = page.locator('.node[data-node-type="video_gen"]')
    await expect(video).to_have_count(1)
    await video.locator('[data-field="prompt"]').fill("a lighthouse at dusk")
    await video.locator('select[data-field="resolution"]').select_option("480p")
    duration = video.locator('[data-field="durationSeconds"]')
    await duration.fill(str(DURATION))
    await duration.press("Tab")
    await image.get_by_role("button", name="Connect from").click()
    await video.get_by_role("button", name="Connect to").click()
    await expect(page.locator(".edges path")).to_have_count(1)
    # flow, image, video, its three fields, the edge: every write answered and shown
    await expect(page.locator(".board")).to_have_attribute("data-revision", "7")
    image_id = await image.get_attribute("data-node-id")
    video_id = await video.get_attribute("data-node-id")
    assert image_id and video_id
    return flow_id, image_id, video_id


async def _video_state(canvas: CanvasPage, output_id: str) -> dict[str, Any]:
    state: dict[str, Any] = await canvas.page.evaluate(
        """(id) => {
          const video = document.querySelector(`.node[data-node-id="${id}"] video`);
          const link = document.querySelector(`.node[data-node-id="${id}"] a.download`);
          return {duration: video.duration, readyState: video.readyState, poster: video.poster,
                  src: video.currentSrc, controls: video.controls, download: link && link.href};
        }""",
        output_id,
    )
    return state


async def test_image_to_video_built_run_and_played_in_the_page(
    browser: Browser, canvas_app: AppClient, artifacts: Path
) -> None:
    url, token = base_url(canvas_app), token_of(canvas_app)
    canvas = await open_canvas(browser, url, token)
    flow_id, _, video_id = await _build_in_page(canvas)
    flow = await (await canvas_app.get(f"{API}/flows/{flow_id}")).json()
    video_data = next(n["data"] for n in flow["nodes"] if n["id"] == video_id)
    assert video_data["durationSeconds"] == DURATION and video_data["resolution"] == "480p"

    watcher = await open_canvas(browser, url, token)  # a second page on the same flow
    await watcher.open_flow(flow_id)
    for page in (canvas, watcher):
        await page.watch_progress(video_id)
    await canvas.page.screenshot(path=artifacts / "1-before-run.png")

    await canvas.node(video_id).get_by_role("button", name="Run").click()
    await canvas.page.wait_for_function(
        "() => window.__progress.some((v) => v >= 1 && v <= 99)", timeout=30_000
    )
    await canvas.page.screenshot(path=artifacts / "2-during-run.png")

    outputs = canvas.page.locator('.node[data-node-type="generated_asset"]')
    await expect(outputs).to_have_count(1, timeout=60_000)
    output_id = await outputs.get_attribute("data-node-id")
    assert output_id
    for page in (canvas, watcher):
        await expect(page.node(video_id).locator(".status")).to_have_text("completed")
        await page.page.wait_for_function(VIDEO_READY, arg=output_id, timeout=30_000)
        state = await _video_state(page, output_id)
        assert state["readyState"] >= 2 and state["controls"]
        assert abs(state["duration"] - video_data["durationSeconds"]) <= 0.25, state
        assert state["poster"] and state["download"] == state["src"]
        seen = await page.progress_seen()
        between = {v for v in seen if 1 <= v <= 99}
        assert len(between) >= 2, seen
        assert seen[-1] == 100
    await canvas.page.screenshot(path=artifacts / "3-after-run.png")
    assert canvas.unexpected_errors() == [] and watcher.unexpected_errors() == []
