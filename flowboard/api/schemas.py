"""Request and response bodies of the canvas API."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowboard.canvas.metadata import Metadata
from flowboard.canvas.model import Edge, Flow, Node, Position
from flowboard.ids import Id
from flowboard.schema import ApiModel


class FlowCreate(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    # Counted against canvas.max_nodes / max_edges by CanvasService (the body's own size
    # is bounded by server.max_body_bytes).
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class FlowUpdate(ApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: Metadata | None = None
    base_revision: int | None = Field(default=None, ge=1)


class NodeCreate(ApiModel):
    id: Id | None = None
    type: str = Field(max_length=64)
    position: Position = Position()
    data: dict[str, Any] = Field(default_factory=dict)
    base_revision: int | None = Field(default=None, ge=1)


class NodeUpdate(ApiModel):
    position: Position | None = None
    data: dict[str, Any] | None = None
    base_revision: int | None = Field(default=None, ge=1)


class EdgeCreate(ApiModel):
    id: Id | None = None
    source: Id
    target: Id
    source_handle: str | None = Field(default=None, max_length=64)
    target_handle: str | None = Field(default=None, max_length=64)
    base_revision: int | None = Field(default=None, ge=1)


class FlowList(ApiModel):
    items: list[Flow]
    total: int
    offset: int
    limit: int


class ErrorBody(ApiModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(ApiModel):
    error: ErrorBody


class DiskState(ApiModel):
    """One watched filesystem: below `floorBytes` free, uploads and runs answer 507."""

    path: str
    free_bytes: int
    total_bytes: int
    floor_bytes: int
    low: bool


class Health(ApiModel):
    status: str
    database: str | None = None
    # Readiness only: each configured provider "up", "down" or "unchecked" (no probe).
    # A provider that is down does not make the service unready: its jobs retry.
    providers: dict[str, str] | None = None
    disk: str | None = None  # "ok", or "low" while uploads and runs are refused
    filesystems: list[DiskState] | None = None
