"""Waiting for an execution to finish, by polling the real API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.servers.app import AppClient

API = "/api/creative-flowboard"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


async def wait_execution(
    client: AppClient, execution_id: str, timeout: float = 60
) -> dict[str, Any]:
    """Poll until the execution is terminal; return it."""
    async with asyncio.timeout(timeout):
        while True:
            body: dict[str, Any] = await (
                await client.get(f"{API}/executions/{execution_id}")
            ).json()
            if body["status"] in TERMINAL:
                return body
            await asyncio.sleep(0.05)


@pytest.fixture
def api() -> str:
    return API
