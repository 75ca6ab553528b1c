"""Reuse unchanged results: a task whose content key matches a finished take ends at once.

The rule (docs/architecture.md, "Reuse"): a task of an execution that allows reuse
(`run/{flowId}` unless `force`, `run-node` with `reuse: true`) looks for the newest
COMPLETED asset of the same organisation, flow and node with its content key. Found,
the task ends COMPLETED with `cached: true` and that asset, no provider is asked, and
the asset becomes the node's latest take again (its `updatedAt` is touched), so the
nodes downstream read exactly it and reuse too when nothing else changed. A node
without a fixed seed is reused like any other: its output is the take the user saw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pymongo import DESCENDING

from flowboard.assets.model import AssetStatus, GeneratedAsset
from flowboard.db.documents import from_doc
from flowboard.ids import utcnow
from flowboard.models.costs import Units
from flowboard.models.execution import TaskStatus
from flowboard.runs.changes import TaskChange
from flowboard.runs.content_key import ContentKeys
from flowboard.runs.port import Job
from flowboard.store.assets import AssetStore

_LOGGER = logging.getLogger(__name__)


@dataclass
class Reuse:
    """Content keys of tasks and the finished takes they may reuse."""

    assets: AssetStore
    keys: ContentKeys = field(init=False)

    def __post_init__(self) -> None:
        self.keys = ContentKeys(self.assets)

    async def find(self, job: Job, key: str) -> GeneratedAsset | None:
        """The newest COMPLETED take of this node with this key, in the job's organisation."""
        doc = await self.assets.database.assets.find_one(
            {
                "orgId": job.org_id,
                "flowId": job.flow.id,
                "nodeId": job.node.id,
                "contentKey": key,
                "status": AssetStatus.COMPLETED.value,
            },
            sort=[("updatedAt", DESCENDING)],
        )
        return None if doc is None else from_doc(GeneratedAsset, doc)

    async def claim(self, job: Job, asset: GeneratedAsset, key: str) -> TaskChange:
        """Make the asset the node's latest take again; the change that ends the task."""
        await self.assets.database.assets.update_one(
            {"_id": asset.id, "orgId": job.org_id}, {"$set": {"updatedAt": utcnow()}}
        )
        _LOGGER.info(
            "reusing an unchanged result",
            extra={
                "execution_id": job.execution_id,
                "node_id": job.node.id,
                "asset_id": asset.id,
            },
        )
        return TaskChange(
            status=TaskStatus.COMPLETED,
            output_asset_id=asset.id,
            output_url=asset.url,
            description="reused an unchanged result",
            cached=True,
            content_key=key,
            actual_units=Units(),
            actual_cost=0.0,
        )
