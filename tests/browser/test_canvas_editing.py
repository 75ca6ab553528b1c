"""The canvas page in a real browser: sign in, list and create flows, draw a flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from tests.browser.canvas import API, PHONE, base_url, make_flow, open_canvas, token_of
from tests.servers.app import AppClient


async def _flow(app: AppClient, flow_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await (await app.get(f"{API}/flows/{flow_id}")).json()
    return body


async def test_sign_in_create_and_draw_a_flow(
    browser: Browser, canvas_app: AppClient, artifacts: Path
) -> None:
    canvas = await open_canvas(browser, base_url(canvas_app), token_of(canvas_app))
    page = canvas.page
    token = await page.evaluate("() => sessionStorage.getItem('flowboard.token')")
    assert token == token_of(canvas_app) and token not in page.url

    await page.get_by_label("New flow name").fill("Drawn in a browser")
    await page.get_by_role("button", name="Create flow").click()
    await canvas.wait_live()
    flow_id = page.url.rsplit("flow=", 1)[1]

    await page.get_by_role("button", name="Add prompt").click()
    await page.get_by_role("button", name="Add video gen").click()
    prompt = page.locator('.node[data-node-type="prompt"]')
    video = page.locator('.node[data-node-type="video_gen"]')
    await expect(video).to_have_count(1)
    prompt_id = await prompt.get_attribute("data-node-id")
    video_id = await video.get_attribute("data-node-id")
    assert prompt_id and video_id

    # fields built from the schema: a textarea, a choice, a number
    await prompt.locator('[data-field="text"]').fill("a lighthouse at dusk")
    await prompt.locator('[data-field="text"]').press("Tab")
    await video.locator('select[data-field="aspectRatio"]').select_option("9:16")
    duration = video.locator('input[data-field="durationSeconds"]')
    await duration.fill("3")
    await duration.press("Tab")

    await prompt.get_by_role("button", name="Connect from").click()
    await video.get_by_role("button", name="Connect to").click()
    await expect(page.locator(".edges path")).to_have_count(1)
    # flow, two nodes, three fields, the edge: every write answered and shown
    await expect(page.locator(".board")).to_have_attribute("data-revision", "7")

    def data_of(flow: dict[str, Any], node_id: str) -> dict[str, Any]:
        found: dict[str, Any] = next(n for n in flow["nodes"] if n["id"] == node_id)
        return found

    flow = await _flow(canvas_app, flow_id)
    assert data_of(flow, prompt_id)["data"]["text"] == "a lighthouse at dusk"
    assert data_of(flow, video_id)["data"]["aspectRatio"] == "9:16"
    assert data_of(flow, video_id)["data"]["durationSeconds"] == 3
    assert [(e["source"], e["target"]) for e in flow["edges"]] == [(prompt_id, video_id)]
    await page.screenshot(path=artifacts / "drawn.png")

    # keyboard: arrows move the focused node (a PATCH), Delete removes it
    before = data_of(flow, video_id)["position"]
    await video.focus()
    await page.keyboard.press("ArrowRight")
    await expect(video).to_have_attribute("data-x", str(round(before["x"] + 20)))
    await video.get_by_role("button", name="Remove edge from").click()
    await expect(page.locator(".edges path")).to_have_count(0)
    await prompt.focus()
    await page.keyboard.press("Delete")
    await expect(prompt).to_have_count(0)
    flow = await _flow(canvas_app, flow_id)
    assert [n["id"] for n in flow["nodes"]] == [video_id] and flow["edges"] == []
    assert data_of(flow, video_id)["position"]["x"] == before["x"] + 20

    # a value the API refuses (over the schema's maximum): told, and the stored one shown
    await duration.fill("99")
    await duration.press("Tab")
    await expect(page.locator('#notice[data-kind="error"]')).to_be_visible()
    await expect(duration).to_have_value("3")

    # the flow list: rename, then delete in two presses
    await page.get_by_role("button", name="← Flows").click()
    row = page.locator(f'li[data-flow-id="{flow_id}"]')
    await row.get_by_label("Name of").fill("Renamed")
    await row.get_by_role("button", name="Rename").click()
    await expect(row.get_by_role("button", name="Open Renamed")).to_be_visible()
    await row.get_by_role("button", name="Delete").click()
    await row.get_by_role("button", name="Really delete").click()
    await expect(row).to_have_count(0)
    assert (await canvas_app.get(f"{API}/flows/{flow_id}")).status == 404

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API token")).to_be_visible()
    assert await page.evaluate("() => sessionStorage.getItem('flowboard.token')") is None
    # the browser logs the refused edit's answer; nothing else
    assert canvas.unexpected_errors("status of 422") == []


async def test_inline_scripts_are_refused_by_the_pages_csp(
    browser: Browser, canvas_app: AppClient
) -> None:
    canvas = await open_canvas(browser, base_url(canvas_app), token_of(canvas_app))
    violated = await canvas.page.evaluate(
        """() => new Promise((resolve) => {
          document.addEventListener('securitypolicyviolation',
            (e) => resolve(e.effectiveDirective), {once: true});
          const script = document.createElement('script');
          script.textContent = 'window.inlineRan = true';
          document.body.append(script);
        })"""
    )
    assert violated == "script-src-elem"
    assert await canvas.page.evaluate("() => window.inlineRan") is None
    # the only console error is the refusal itself
    assert canvas.unexpected_errors("Content Security Policy") == []
    assert len(canvas.errors) == 1


async def test_a_phone_reads_the_flow_top_to_bottom(
    browser: Browser, canvas_app: AppClient, artifacts: Path
) -> None:
    nodes = [
        {"id": "words", "type": "prompt", "data": {"text": "a lighthouse at dusk"}},
        {"id": "clip", "type": "video_gen", "position": {"x": 700, "y": 400}},
    ]
    flow = await make_flow(canvas_app, "On a phone", nodes)
    canvas = await open_canvas(browser, base_url(canvas_app), token_of(canvas_app), PHONE)
    await canvas.open_flow(flow["id"])
    page = canvas.page
    for node_id in ("words", "clip"):
        await expect(canvas.node(node_id)).to_be_visible()
        box = await canvas.node(node_id).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    await page.screenshot(path=artifacts / "phone.png", full_page=True)
    assert canvas.unexpected_errors() == []
