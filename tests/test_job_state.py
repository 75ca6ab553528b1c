"""One lifecycle for a job: the task's transition table also guards the asset's end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from flowboard.assets.model import AssetStatus, AssetType, GeneratedAsset, Workflow
from flowboard.db.database import Database
from flowboard.ids import new_id, utcnow
from flowboard.models.execution import TERMINAL, TRANSITIONS, TaskStatus, sources
from flowboard.store.assets import AssetStore


@pytest.fixture
async def assets(mongo_server: str, mongo_db_name: str) -> AsyncIterator[AssetStore]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server, tz_aware=True)
    yield AssetStore(Database(client, client[mongo_db_name]))
    await client.close()


def _running() -> GeneratedAsset:
    now = utcnow()
    return GeneratedAsset(
        id=new_id("asset"),
        org_id="org",
        execution_id="exec",
        node_id="n",
        type=AssetType.IMAGE,
        workflow=Workflow.TEXT_TO_IMAGE,
        status=AssetStatus.PROCESSING,
        progress=40.0,
        attempts=2,
        created_at=now,
        updated_at=now,
    )


def test_sources_read_the_transition_table_backwards() -> None:
    for status in TaskStatus:
        assert sources(status) == {s for s, targets in TRANSITIONS.items() if status in targets}
        assert not sources(status) & TERMINAL  # nothing leaves an end


async def test_an_asset_ends_once_and_never_stores_job_state(assets: AssetStore) -> None:
    asset = _running()
    await assets.insert(asset)
    stored = await assets.database.assets.find_one({"_id": asset.id})
    assert stored is not None and not {"progress", "progressEstimated", "attempts"} & set(stored)

    ended = await assets.finish(asset.id, AssetStatus.COMPLETED, {"url": "https://x/1.png"})
    assert ended is not None and ended.status is AssetStatus.COMPLETED
    again = await assets.finish(asset.id, AssetStatus.FAILED, {"error": None})
    assert again is None  # COMPLETED -> FAILED is not in the table
    final = await assets.get_any(asset.id)
    assert final is not None and (final.status, final.url) == (
        AssetStatus.COMPLETED,
        "https://x/1.png",
    )
