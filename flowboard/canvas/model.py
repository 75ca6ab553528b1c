"""Flow, Node and Edge documents as stored and as served."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from flowboard.ids import Id
from flowboard.nodes.registry import NODE_TYPES
from flowboard.schema import ApiModel

DEFAULT_ORG = "default"


class Position(ApiModel):
    x: float = 0.0
    y: float = 0.0

    @field_validator("x", "y")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value) or abs(value) > 1e9:
            raise ValueError("coordinate must be a finite number within ±1e9")
        return value


class Node(ApiModel):
    """A canvas node; `data` is checked against the model of its `type`."""

    id: Id
    type: str = Field(max_length=64)
    position: Position = Position()
    data: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_data(self, info: ValidationInfo) -> Node:
        node_type = NODE_TYPES.get(self.type)
        if node_type is None:
            known = ", ".join(sorted(NODE_TYPES))
            raise ValueError(f"unknown node type {self.type!r} (known: {known})")
        normalised = node_type.validate_data(self.data, info.context)
        if normalised != self.data:
            object.__setattr__(self, "data", normalised)
        return self


class Edge(ApiModel):
    id: Id
    source: Id
    target: Id
    source_handle: str | None = Field(default=None, max_length=64)
    target_handle: str | None = Field(default=None, max_length=64)


class Flow(ApiModel):
    """A canvas: nodes, the edges between them, and a revision bumped by every change."""

    id: Id
    org_id: str = DEFAULT_ORG
    name: str = Field(min_length=1, max_length=200)
    # No size limits here: a stored flow over them must stay readable (the limits are
    # checked on each write, by CanvasService, against the settings).
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    revision: int = Field(ge=1)
    created_at: datetime
    updated_at: datetime

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)
