"""The output node of a generation node: one per source node, showing its latest take.

A re-run does not add a node: it updates the `generated_asset` node wired from the
source with the new take (the asset records keep every take; the API lists them).
"""

from __future__ import annotations

from typing import Any

from flowboard.assets.model import GeneratedAsset
from flowboard.canvas.model import Edge, Flow, Node, Position

OUTPUT_TYPE = "generated_asset"
OUTPUT_OFFSET_X = 360.0


def take_data(asset: GeneratedAsset) -> dict[str, Any]:
    """The output node's data for a finished asset (its files, newest take)."""
    data: dict[str, Any] = {
        "assetId": asset.id,
        "url": asset.url,
        "mediaType": asset.type.value,
        "sourceNodeId": asset.node_id,
        "executionId": asset.execution_id,
    }
    if asset.poster_url:
        data["posterUrl"] = asset.poster_url
    if len(asset.outputs) > 1:
        data["urls"] = [output.url for output in asset.outputs]
    return data


def output_node_of(flow: Flow, source_id: str) -> Node | None:
    """The source's output node (the last one, if an older version added several)."""
    found = [
        n for n in flow.nodes if n.type == OUTPUT_TYPE and n.data.get("sourceNodeId") == source_id
    ]
    return found[-1] if found else None


def show_take(flow: Flow, asset: GeneratedAsset) -> Flow | None:
    """The flow with the asset shown on its source's output node; None if nothing changes."""
    source_id = asset.node_id or ""
    source = flow.node(source_id)
    if source is None:
        return None
    data = take_data(asset)
    existing = output_node_of(flow, source_id)
    if existing is not None:
        if existing.data.get("assetId") == asset.id:
            return None  # this take is shown already (an event applied twice)
        updated = Node(id=existing.id, type=OUTPUT_TYPE, position=existing.position, data=data)
        nodes = [updated if n.id == existing.id else n for n in flow.nodes]
        return flow.model_copy(update={"nodes": nodes})
    node_id = f"out_{asset.id}"
    position = Position(x=source.position.x + OUTPUT_OFFSET_X, y=source.position.y)
    node = Node(id=node_id, type=OUTPUT_TYPE, position=position, data=data)
    edge = Edge(id=f"e_{node_id}", source=source_id, target=node_id)
    return flow.model_copy(update={"nodes": [*flow.nodes, node], "edges": [*flow.edges, edge]})
