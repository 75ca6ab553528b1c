"""The page renders no URL that breaks the rule, even one an older record already holds."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, expect
from pymongo import AsyncMongoClient

from flowboard.config import Settings
from flowboard.keys import SETTINGS
from flowboard.safe_url import url_problem
from tests.browser.canvas import base_url, make_flow, open_canvas, token_of
from tests.servers.app import AppClient

GOOD = "https://cdn.example.com/still.png"
BAD = ["javascript:alert(1)", " JaVaScript:alert(2)", "data:image/png;base64,AAAA"]
BAD += ["vbscript:msgbox(3)", "//evil.example/x.png", "/\\evil.example/y.png"]

# Every URL the page put in an href, src or poster attribute.
RENDERED_URLS = """() => [...document.querySelectorAll('[href], [src], [poster]')]
  .flatMap((el) => ['href', 'src', 'poster'].map((a) => el.getAttribute(a)))
  .filter((v) => v !== null)"""


def _old_nodes() -> list[dict[str, Any]]:
    """Nodes as a version before the URL rule could have stored them."""
    at = {"x": 0, "y": 0}
    video = {"url": BAD[0], "posterUrl": BAD[1], "mediaType": "video"}
    poster = {"url": GOOD.replace("still", "clip"), "posterUrl": BAD[2], "mediaType": "video"}
    images = {"url": GOOD, "urls": [BAD[3], GOOD, BAD[4]], "mediaType": "image"}
    return [
        {"id": "video", "type": "generated_asset", "position": at, "data": video},
        {"id": "poster", "type": "generated_asset", "position": {"x": 300, "y": 0}, "data": poster},
        {"id": "images", "type": "generated_asset", "position": {"x": 0, "y": 300}, "data": images},
        {"id": "input", "type": "asset", "position": {"x": 300, "y": 300}, "data": {"url": BAD[5]}},
    ]


async def test_no_refused_url_reaches_href_src_or_poster(
    browser: Browser, canvas_app: AppClient
) -> None:
    flow = await make_flow(canvas_app, "Old record", [])
    settings: Settings = canvas_app.app[SETTINGS]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.database.uri)
    try:
        flows = mongo[settings.database.name]["flows"]
        stored = await flows.update_one({"_id": flow["id"]}, {"$set": {"nodes": _old_nodes()}})
        assert stored.modified_count == 1
    finally:
        await mongo.close()

    canvas = await open_canvas(browser, base_url(canvas_app), token_of(canvas_app))
    await canvas.open_flow(flow["id"])
    await expect(canvas.node("images").locator("img")).to_have_count(1)
    await expect(canvas.node("poster").locator("video")).to_have_count(1)
    await expect(canvas.node("video")).to_contain_text("Output link refused")

    urls = await canvas.page.evaluate(RENDERED_URLS)
    media = [u for u in urls if not u.startswith("/web/")]  # the page's own files aside
    clip = GOOD.replace("still", "clip")
    assert sorted(media) == [clip, clip, GOOD, GOOD]  # each shown, and its download link
    assert [u for u in media if url_problem(u) is not None] == []
    assert not any(bad.strip().lower() in u.lower() for u in urls for bad in BAD)
