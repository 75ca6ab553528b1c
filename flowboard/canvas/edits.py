"""Pure edits of a flow: each takes a flow and returns the changed lists."""

from __future__ import annotations

from typing import Any

from flowboard.canvas.model import Edge, Flow, Node, Position
from flowboard.errors import ErrorAnswer, FlowboardError


class NotFoundInFlow(FlowboardError, LookupError):
    """A node or edge named by an edit is not in the flow."""

    http_status = 404

    def __init__(self, kind: str, item_id: str) -> None:
        super().__init__(f"{kind} {item_id!r} not found")
        self.kind = kind
        self.item_id = item_id

    def answer(self) -> ErrorAnswer:
        return ErrorAnswer(self.http_status, f"{self.kind}_not_found", str(self))


def add_node(flow: Flow, node: Node) -> Flow:
    return flow.model_copy(update={"nodes": [*flow.nodes, node]})


def update_node(
    flow: Flow, node_id: str, position: Position | None, data: dict[str, Any] | None
) -> Flow:
    """Move a node and/or merge keys into its data (a key set to null is removed)."""
    current = flow.node(node_id)
    if current is None:
        raise NotFoundInFlow("node", node_id)
    merged = dict(current.data)
    for key, value in (data or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    changed = Node(
        id=current.id, type=current.type, position=position or current.position, data=merged
    )
    nodes = [changed if n.id == node_id else n for n in flow.nodes]
    return flow.model_copy(update={"nodes": nodes})


def remove_node(flow: Flow, node_id: str) -> Flow:
    """Remove a node and every edge touching it."""
    if flow.node(node_id) is None:
        raise NotFoundInFlow("node", node_id)
    nodes = [n for n in flow.nodes if n.id != node_id]
    edges = [e for e in flow.edges if node_id not in (e.source, e.target)]
    return flow.model_copy(update={"nodes": nodes, "edges": edges})


def add_edge(flow: Flow, edge: Edge) -> Flow:
    return flow.model_copy(update={"edges": [*flow.edges, edge]})


def remove_edge(flow: Flow, edge_id: str) -> Flow:
    if not any(e.id == edge_id for e in flow.edges):
        raise NotFoundInFlow("edge", edge_id)
    return flow.model_copy(update={"edges": [e for e in flow.edges if e.id != edge_id]})


def set_details(flow: Flow, name: str | None, metadata: dict[str, Any] | None) -> Flow:
    update: dict[str, Any] = {}
    if name is not None:
        update["name"] = name
    if metadata is not None:
        update["metadata"] = metadata
    return flow.model_copy(update=update)
