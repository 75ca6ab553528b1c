"""Fixtures: the Veo and Google image fakes, each on its own loopback port per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.google_image import FakeGoogleImages
from tests.fakes.veo import FakeVeo


@pytest.fixture
async def images() -> AsyncIterator[FakeGoogleImages]:
    async with FakeGoogleImages() as server:
        yield server


@pytest.fixture
async def veo() -> AsyncIterator[FakeVeo]:
    async with FakeVeo() as server:
        yield server


def fast_gemini_veo(veo: FakeVeo) -> dict[str, Any]:
    """[providers.veo] in Gemini API-key mode against the fake, polling every 50 ms."""
    return {
        "mode": "gemini",
        "api_key": veo.api_key,
        "base_url": veo.base_url,
        "first_poll_seconds": 0.05,
        "poll_interval_seconds": 0.05,
        "poll_max_seconds": 0.2,
    }
