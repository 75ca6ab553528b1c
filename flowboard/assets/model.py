"""The GeneratedAsset document (also used for uploaded input images)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from flowboard.budgets.model import Reservation
from flowboard.events.types import AssetUpdated
from flowboard.execution.model import TaskStatus
from flowboard.schema import ApiModel

# An asset goes through the same lifecycle as the task that produces it.
AssetStatus = TaskStatus


class AssetType(StrEnum):
    VIDEO = "video"
    IMAGE = "image"


class Workflow(StrEnum):
    TEXT_TO_VIDEO = "text-to-video"
    IMAGE_TO_VIDEO = "image-to-video"
    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    UPLOAD = "upload"


class MediaInfo(ApiModel):
    """A stored video as probed, never as requested (a workflow may make its own size)."""

    width: int
    height: int
    fps: float
    duration_seconds: float
    frames: int


class StorageInfo(ApiModel):
    backend: str
    bucket: str | None = None
    key: str
    content_type: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None


class StoredOutputFile(StorageInfo):
    """One file of a take with several (images of a count > 1 run), with its URL."""

    url: str


class AssetError(ApiModel):
    code: str
    message: str


class GeneratedAsset(ApiModel):
    """A video or image: its request, its provider job, and where it is stored.

    operation_id: the provider's job id, persisted before anything else happens so
        that a restart can resume following the job.
    progress_estimated: true when the provider reports no percentage of its own.
    """

    id: str
    org_id: str
    flow_id: str | None = None
    node_id: str | None = None
    execution_id: str | None = None
    type: AssetType
    provider: str | None = None
    workflow: Workflow
    prompt: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    status: AssetStatus
    progress: float = Field(default=0.0, ge=0, le=100)
    progress_estimated: bool = False
    operation_id: str | None = None
    attempts: int = 0
    url: str | None = None
    storage: StorageInfo | None = None
    outputs: list[StoredOutputFile] = Field(default_factory=list)
    poster: StorageInfo | None = None
    poster_url: str | None = None
    media: MediaInfo | None = None  # a video's real size, rate, duration, frames
    storage_prefix: str | None = None
    content_key: str | None = None  # execution/content_key.py: what this take depends on
    reservation: Reservation | None = None  # budget reserved when it started (budgets/)
    error: AssetError | None = None
    created_at: datetime
    updated_at: datetime


def asset_event(asset: GeneratedAsset) -> AssetUpdated:
    """The `asset.updated` event announcing an asset's current state."""
    return AssetUpdated(
        asset_id=asset.id,
        org_id=asset.org_id,
        flow_id=asset.flow_id or "",
        execution_id=asset.execution_id or "",
        node_id=asset.node_id or "",
        status=asset.status.value,
        progress=asset.progress,
        estimated=asset.progress_estimated,
        url=asset.url,
        error_code=asset.error.code if asset.error else None,
        error_message=asset.error.message if asset.error else None,
    )
