"""Real-browser fixtures: Debian's chromium driven by Playwright, against the real app.

Playwright's own browser download cannot work here, so the system chromium is launched by
path (`.ci/run` installs it). Tests skip, saying why, only when that executable is absent.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from flowboard.app import create_app
from tests.browser.canvas import ARTIFACTS
from tests.servers.app import AppClient, MakeSettings

CHROMIUM = Path(os.environ.get("FLOWBOARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> Path:
    """The system chromium; the test skips, saying why, when it is not installed."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """A headless chromium of its own for the test."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def canvas_app(aiohttp_client: Callable[..., Any], make_settings: MakeSettings) -> AppClient:
    """The real app on a loopback port, progress reported often enough to be watched."""
    settings = make_settings(execution={"progress_min_interval_seconds": 0.05})
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where this test's screenshots go (test-artifacts/ is not committed)."""
    folder = ARTIFACTS / str(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
