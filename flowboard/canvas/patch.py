"""CANVAS_PATCH: what one stored edit changed, so a move costs a node, not the flow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import Field

from flowboard.canvas.model import Edge, Flow, Node
from flowboard.schema import ApiModel


class CanvasPatch(ApiModel):
    """The change from `baseRevision` to `revision` of one flow.

    A client at `baseRevision` upserts `nodes` / `edges` by id (a new one goes last),
    drops the `removedNodes` / `removedEdges` ids, and takes `name` / `metadata` when
    present (they are sent only when they changed). A client at any other revision
    has missed something and must reconnect for a SYNC_CANVAS snapshot.
    """

    id: str  # the flow's, as in SYNC_CANVAS
    revision: int
    base_revision: int
    updated_at: datetime
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    removed_nodes: list[str] = Field(default_factory=list)
    removed_edges: list[str] = Field(default_factory=list)
    name: str | None = None
    metadata: dict[str, Any] | None = None

    def to_event_json(self) -> str:
        """The event's data: name and metadata only when they changed."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Identified)


def _changed(before: Sequence[T], after: Sequence[T]) -> tuple[list[T], list[str]]:
    """Items of `after` that are new or differ, and ids of `before` no longer there.

    Edits keep the objects they do not touch, so identity settles almost every item
    and equality is computed only for the few an edit rebuilt.
    """
    old = {item.id: item for item in before}
    upserts = [
        item
        for item in after
        if (prev := old.get(item.id)) is not item and (prev is None or prev != item)
    ]
    kept = {item.id for item in after}
    removed = [item.id for item in before if item.id not in kept]
    return upserts, removed


def diff(before: Flow, after: Flow) -> CanvasPatch:
    """The patch that turns `before` into `after` (a stored edit of it)."""
    nodes, removed_nodes = _changed(before.nodes, after.nodes)
    edges, removed_edges = _changed(before.edges, after.edges)
    return CanvasPatch(
        id=after.id,
        revision=after.revision,
        base_revision=before.revision,
        updated_at=after.updated_at,
        nodes=nodes,
        edges=edges,
        removed_nodes=removed_nodes,
        removed_edges=removed_edges,
        name=after.name if after.name != before.name else None,
        metadata=after.metadata if after.metadata != before.metadata else None,
    )
