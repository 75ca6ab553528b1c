"""Helpers of the browser tests: open the canvas page signed in, read what it shows."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.async_api import Browser, ConsoleMessage, Locator, Page

from tests.servers.app import AppClient, FlowboardClient

API = "/api/creative-flowboard"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
DESKTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}

# What the page shows of its nodes and edges, as a comparable value.
RENDERED = """() => ({
  nodes: [...document.querySelectorAll('.node')].map((el) => ({
    id: el.dataset.nodeId, type: el.dataset.nodeType, x: el.dataset.x, y: el.dataset.y,
    title: el.querySelector('.node-title').textContent,
  })),
  edges: [...document.querySelectorAll('.edges path')].map((p) => p.dataset.edgeId).sort(),
  revision: document.querySelector('.board')?.dataset.revision,
})"""


@dataclass
class CanvasPage:
    """One browser page on the canvas, and the console errors it logged."""

    page: Page
    base_url: str
    errors: list[str] = field(default_factory=list)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def unexpected_errors(self, *allowed: str) -> list[str]:
        """Console errors not matching one of the `allowed` patterns."""
        return [e for e in self.errors if not any(re.search(p, e) for p in allowed)]

    def node(self, node_id: str) -> Locator:
        return self.page.locator(f'.node[data-node-id="{node_id}"]')

    async def rendered(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate(RENDERED)
        return result

    async def wait_live(self) -> None:
        await self.page.locator('.link[data-state="live"]').wait_for(timeout=10_000)

    async def open_flow(self, flow_id: str) -> None:
        await self.page.evaluate("(id) => { location.hash = 'flow=' + id; }", flow_id)
        await self.wait_live()

    async def watch_progress(self, node_id: str) -> None:
        """Record every value the node's progress bar takes (window.__progress)."""
        await self.page.evaluate(
            """(id) => {
              window.__progress = [];
              const bar = document.querySelector(`.node[data-node-id="${id}"] progress`);
              new MutationObserver(() => window.__progress.push(bar.value))
                .observe(bar, {attributes: true, attributeFilter: ['value']});
            }""",
            node_id,
        )

    async def progress_seen(self) -> list[float]:
        values: list[float] = await self.page.evaluate("() => window.__progress")
        return values


async def open_canvas(
    browser: Browser, base_url: str, token: str, viewport: dict[str, int] = DESKTOP
) -> CanvasPage:
    """A new browser context on the page, signed in through the sign-in form."""
    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = await context.new_page()
    canvas = CanvasPage(page, base_url)
    page.on("console", canvas._console)
    page.on("pageerror", lambda exc: canvas.errors.append(f"pageerror: {exc}"))
    await page.goto(base_url)
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Flows").wait_for()
    return canvas


def base_url(app: AppClient) -> str:
    return str(app.make_url("/"))


def token_of(app: AppClient) -> str:
    assert isinstance(app, FlowboardClient) and app.token, "the app runs with auth on"
    return app.token


def png_bytes(size: tuple[int, int] = (320, 180)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


async def make_flow(app: AppClient, name: str, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """A flow made through the REST API (another client than the page)."""
    resp = await app.post(f"{API}/flows", json={"name": name, "nodes": nodes})
    assert resp.status == 201, await resp.text()
    flow: dict[str, Any] = await resp.json()
    return flow
