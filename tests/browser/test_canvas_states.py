"""Run states in the page: a failing node shows its error, cancel and retry by key and button."""

from __future__ import annotations

import base64
from typing import Any

from playwright.async_api import Browser, expect

from tests.browser.canvas import API, base_url, make_flow, open_canvas, png_bytes, token_of
from tests.servers.app import AppClient


async def test_failed_cancelled_and_retried_nodes(browser: Browser, canvas_app: AppClient) -> None:
    long_video = {"prompt": "the sea", "durationSeconds": 60, "resolution": "480p"}
    nodes: list[dict[str, Any]] = [
        {"id": "silent", "type": "video_gen"},  # no prompt anywhere: fails input_missing
        {"id": "long", "type": "video_gen", "position": {"x": 340, "y": 40}, "data": long_video},
    ]
    flow = await make_flow(canvas_app, "States", nodes)
    canvas = await open_canvas(browser, base_url(canvas_app), token_of(canvas_app))
    await canvas.open_flow(flow["id"])
    silent, long = canvas.node("silent"), canvas.node("long")

    await silent.get_by_role("button", name="Run").click()
    await expect(silent.locator(".status")).to_have_text("failed")
    await expect(silent.locator(".error")).to_contain_text("input_missing: ")
    await expect(silent.get_by_role("button", name="Retry")).to_be_visible()

    await long.focus()
    await canvas.page.keyboard.press("r")  # R runs the focused node
    await expect(long.locator(".status")).to_have_text("processing")
    await long.get_by_role("button", name="Cancel").click()
    await expect(long.locator(".status")).to_have_text("cancelled")
    await expect(long.locator(".error")).to_contain_text("cancelled")

    await long.get_by_role("button", name="Retry").click()
    await expect(long.locator(".status")).to_have_text("processing")
    await canvas.page.get_by_role("button", name="Cancel run").click()
    await expect(long.locator(".status")).to_have_text("cancelled")

    # the whole flow: both nodes run; then the toolbar cancels and retries that run
    toolbar = canvas.page.get_by_role("toolbar")
    for action in ("Run flow", "Retry failed"):
        await toolbar.get_by_role("button", name=action).click()
        await expect(long.locator(".status")).to_have_text("processing")
        await expect(silent.locator(".status")).to_have_text("failed")
        await toolbar.get_by_role("button", name="Cancel run").click()
        await expect(long.locator(".status")).to_have_text("cancelled")

    runs = await (await canvas_app.get(f"{API}/flows/{flow['id']}/executions")).json()
    shapes = [
        (run["kind"], {node: task["status"] for node, task in run["tasks"].items()})
        for run in reversed(runs["items"])
    ]
    both = {"silent": "FAILED", "long": "CANCELLED"}
    assert shapes == [
        ("node", {"silent": "FAILED"}),
        ("node", {"long": "CANCELLED"}),
        ("retry", {"long": "CANCELLED"}),
        ("flow", both),
        ("retry", both),
    ]
    assert canvas.unexpected_errors() == []


async def test_an_image_dropped_on_the_canvas_becomes_an_asset_node(
    browser: Browser, canvas_app: AppClient
) -> None:
    flow = await make_flow(canvas_app, "Drop zone", [])
    canvas = await open_canvas(browser, base_url(canvas_app), token_of(canvas_app))
    await canvas.open_flow(flow["id"])
    files = await canvas.page.evaluate_handle(
        """(b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
          return transfer;
        }""",
        base64.b64encode(png_bytes()).decode(),
    )
    await canvas.page.locator(".board").dispatch_event(
        "drop", {"dataTransfer": files, "clientX": 500, "clientY": 400}
    )
    dropped = canvas.page.locator('.node[data-node-type="asset"]')
    await expect(dropped.locator('img[alt="dropped.png"]')).to_be_visible()
    stored = await (await canvas_app.get(f"{API}/flows/{flow['id']}")).json()
    (node,) = stored["nodes"]
    assert node["data"]["label"] == "dropped.png" and node["data"]["assetId"]
    assert node["position"]["x"] > 300  # where it was dropped, not the next free spot
    assert canvas.unexpected_errors() == []


async def test_the_flow_list_is_paginated(browser: Browser, canvas_app: AppClient) -> None:
    for number in range(21):
        await make_flow(canvas_app, f"Flow {number:02}", [])
    canvas = await open_canvas(browser, base_url(canvas_app), token_of(canvas_app))
    page = canvas.page
    await expect(page.locator(".flows li")).to_have_count(20)
    await expect(page.locator(".page-info")).to_have_text("1\u201320 of 21")
    await expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    await page.get_by_role("button", name="Next").click()
    await expect(page.locator(".page-info")).to_have_text("21\u201321 of 21")
    await expect(page.locator(".flows li")).to_have_count(1)
    await expect(page.get_by_role("button", name="Next")).to_be_disabled()
    assert canvas.unexpected_errors() == []
