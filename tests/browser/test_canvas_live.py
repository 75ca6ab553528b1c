"""Live collaboration in the page: edits of other clients, dropped streams, stale drags."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Request, expect

from flowboard.keys import HUB
from tests.browser.canvas import API, CanvasPage, base_url, make_flow, open_canvas, token_of
from tests.servers.app import AppClient

WITHIN_A_SECOND = 1_000  # ms: the bound for another client's edit to show


def _nodes() -> list[dict[str, Any]]:
    return [
        {"id": "words", "type": "prompt", "data": {"text": "waves"}},
        {"id": "clip", "type": "video_gen", "position": {"x": 340, "y": 40}},
    ]


async def _open(browser: Browser, app: AppClient, flow_id: str) -> CanvasPage:
    canvas = await open_canvas(browser, base_url(app), token_of(app))
    await canvas.open_flow(flow_id)
    return canvas


async def test_rest_edits_of_another_client_show_within_a_second(
    browser: Browser, canvas_app: AppClient
) -> None:
    flow = await make_flow(canvas_app, "Shared", _nodes())
    canvas = await _open(browser, canvas_app, flow["id"])
    await expect(canvas.node("clip")).to_have_attribute("data-x", "340")

    url = f"{API}/flows/{flow['id']}"
    moved = await canvas_app.patch(f"{url}/nodes/clip", json={"position": {"x": 610, "y": 250}})
    assert moved.status == 200
    await expect(canvas.node("clip")).to_have_attribute("data-x", "610", timeout=WITHIN_A_SECOND)
    await expect(canvas.node("clip")).to_have_attribute("data-y", "250", timeout=WITHIN_A_SECOND)

    added = await canvas_app.post(
        f"{url}/nodes", json={"id": "more", "type": "prompt", "data": {"text": "from REST"}}
    )
    assert added.status == 201
    await expect(canvas.node("more")).to_be_visible(timeout=WITHIN_A_SECOND)
    await expect(canvas.node("more").locator('[data-field="text"]')).to_have_value("from REST")
    edge = await canvas_app.post(f"{url}/edges", json={"source": "more", "target": "clip"})
    assert edge.status == 201
    await expect(canvas.page.locator(".edges path")).to_have_count(1, timeout=WITHIN_A_SECOND)
    assert canvas.unexpected_errors() == []


async def test_a_dropped_stream_is_reopened_and_ends_as_a_fresh_load(
    browser: Browser, canvas_app: AppClient
) -> None:
    flow = await make_flow(canvas_app, "Dropped", _nodes())
    flow_id, url = flow["id"], f"{API}/flows/{flow['id']}"
    canvas = await open_canvas(browser, base_url(canvas_app), token_of(canvas_app))
    opened: list[str] = []

    def on_request(request: Request) -> None:
        if f"/subscribe/{flow_id}?" in request.url:
            opened.append(request.url)

    canvas.page.on("request", on_request)
    await canvas.open_flow(flow_id)
    hub = canvas_app.app[HUB]

    # 1. the server closes the connection: missed edits are replayed after lastEventId
    for sink in list(hub.channels[flow_id].sinks):
        assert sink.transport is not None
        sink.transport.close()
    await canvas_app.post(f"{url}/nodes", json={"id": "late", "type": "prompt"})
    await canvas_app.patch(f"{url}/nodes/words", json={"position": {"x": 90, "y": 300}})
    await expect(canvas.node("late")).to_be_visible(timeout=10_000)
    await expect(canvas.node("words")).to_have_attribute("data-y", "300")

    # 2. the channel itself ends (as when the server stops): a new one sends a snapshot,
    # and edits made while nobody was subscribed are in it
    hub.channels[flow_id].close()
    await canvas_app.delete(f"{url}/nodes/late")
    await canvas_app.post(f"{url}/edges", json={"id": "wire", "source": "words", "target": "clip"})
    await expect(canvas.node("late")).to_have_count(0, timeout=10_000)
    await expect(canvas.page.locator(".edges path")).to_have_count(1)

    assert len(opened) >= 3
    tickets = [u.split("ticket=", 1)[1].split("&", 1)[0] for u in opened]
    assert len(set(tickets)) == len(tickets)  # a new ticket every time
    assert "lastEventId=" not in opened[0] and all("lastEventId=" in u for u in opened[1:])

    fresh = await _open(browser, canvas_app, flow_id)
    assert await canvas.rendered() == await fresh.rendered()
    shown = await canvas.rendered()
    assert [n["id"] for n in shown["nodes"]] == ["words", "clip"]
    # the browser logs the connection the server cut (1.) as a failed load; nothing else
    assert canvas.unexpected_errors("ERR_INCOMPLETE_CHUNKED_ENCODING") == []
    assert len(canvas.errors) <= 1 and fresh.unexpected_errors() == []


async def test_a_stale_drag_shows_the_conflict_and_the_servers_state(
    browser: Browser, canvas_app: AppClient
) -> None:
    flow = await make_flow(canvas_app, "Contested", _nodes())
    canvas = await _open(browser, canvas_app, flow["id"])
    page, head = canvas.page, canvas.node("clip").locator(".node-title")
    box = await head.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + 20, box["y"] + 5)
    await page.mouse.down()  # the drag begins at the revision shown now

    other = await canvas_app.patch(
        f"{API}/flows/{flow['id']}/nodes/clip", json={"position": {"x": 500, "y": 320}}
    )
    revision = (await other.json())["revision"]
    await expect(page.locator(".board")).to_have_attribute("data-revision", str(revision))

    await page.mouse.move(box["x"] + 140, box["y"] + 90, steps=4)
    await page.mouse.up()
    await expect(page.locator("#notice")).to_contain_text("Conflict")
    await expect(canvas.node("clip")).to_have_attribute("data-x", "500")
    await expect(canvas.node("clip")).to_have_attribute("data-y", "320")
    stored = await (await canvas_app.get(f"{API}/flows/{flow['id']}")).json()
    clip = next(n for n in stored["nodes"] if n["id"] == "clip")
    assert clip["position"] == {"x": 500, "y": 320} and stored["revision"] == revision
    # the refused PATCH is the one console line (the browser logs a failed request)
    assert canvas.unexpected_errors("status of 409") == []


async def test_a_flow_deleted_elsewhere_sends_the_page_back_to_the_list(
    browser: Browser, canvas_app: AppClient
) -> None:
    flow = await make_flow(canvas_app, "Short-lived", _nodes())
    canvas = await _open(browser, canvas_app, flow["id"])
    assert (await canvas_app.delete(f"{API}/flows/{flow['id']}")).status == 204
    await expect(canvas.page.locator("#notice")).to_have_text("This flow was deleted.")
    await expect(canvas.page.get_by_role("heading", name="Flows")).to_be_visible()
    await expect(canvas.page.locator(".node")).to_have_count(0)
    assert "flow=" not in canvas.page.url
    assert canvas.unexpected_errors() == []
