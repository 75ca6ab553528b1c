"""The GeneratedAsset document (also used for uploaded input images)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from flowboard.events.types import AssetUpdated
from flowboard.media.info import MediaInfo
from flowboard.models.budgets import Reservation
from flowboard.models.execution import Task, TaskStatus
from flowboard.schema import ApiModel

# An asset's outcome is a status of the same lifecycle (and transition table) as the task
# that produces it; the task owns the job's state, the asset records how its output ended.
AssetStatus = TaskStatus
# Job state the task owns: never stored on an asset, shown on it from its task.
JOB_STATE_FIELDS = ("progress", "progressEstimated", "attempts")


class AssetType(StrEnum):
    VIDEO = "video"
    IMAGE = "image"


class Workflow(StrEnum):
    TEXT_TO_VIDEO = "text-to-video"
    IMAGE_TO_VIDEO = "image-to-video"
    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    UPLOAD = "upload"


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

    The asset owns its request (provider, workflow, prompt, parameters), the provider's
    operation id, its storage prefix and the stored output (url, storage, outputs,
    poster, media), and its outcome: `status` PROCESSING until the job ends, then the
    end written once with the output or the error (guarded by the task's transition
    table). The job's running state — progress, whether it is estimated, attempts —
    belongs to the task (`execution/`): it is not stored here, and `with_job_state`
    shows the task's on the asset the API returns.

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
    content_key: str | None = None  # runs/content_key.py: what this take depends on
    reservation: Reservation | None = None  # budget reserved when it started (budgets/)
    warnings: list[str] = Field(default_factory=list)  # e.g. some variants were filtered
    traceparent: str | None = None  # W3C trace context of the request that started it
    error: AssetError | None = None
    created_at: datetime
    updated_at: datetime


def with_job_state(asset: GeneratedAsset, task: Task | None) -> GeneratedAsset:
    """The asset as the API shows it: the job state of the task that owns it."""
    if task is None:
        done = asset.status is AssetStatus.COMPLETED
        return asset.model_copy(update={"progress": 100.0}) if done else asset
    update: dict[str, Any] = {
        "progress": task.progress,
        "progress_estimated": task.progress_estimated,
        "attempts": task.attempts,
    }
    if task.status.terminal or not asset.status.terminal:
        error = AssetError(code=task.error.code, message=task.error.message) if task.error else None
        update |= {"status": task.status, "error": error or asset.error}
    return asset.model_copy(update=update)


def asset_event(asset: GeneratedAsset) -> AssetUpdated:
    """The `asset.updated` event announcing an asset's current state."""
    return AssetUpdated(
        asset_id=asset.id,
        org_id=asset.org_id,
        flow_id=asset.flow_id or "",
        execution_id=asset.execution_id or "",
        node_id=asset.node_id or "",
        status=asset.status.value,
        progress=100.0 if asset.status is AssetStatus.COMPLETED else asset.progress,
        estimated=asset.progress_estimated,
        url=asset.url,
        error_code=asset.error.code if asset.error else None,
        error_message=asset.error.message if asset.error else None,
    )
