"""Which nodes a run executes and what each waits for."""

from __future__ import annotations

from flowboard.canvas.graph import topological_order, upstream_of
from flowboard.canvas.model import Flow
from flowboard.nodes.registry import NODE_TYPES


def is_runnable(node_type: str) -> bool:
    found = NODE_TYPES.get(node_type)
    return found is not None and found.runnable


def runnable_dependencies(flow: Flow, node_id: str) -> list[str]:
    """The nearest runnable ancestors of a node, looking through input-only nodes."""
    types = {n.id: n.type for n in flow.nodes}
    found: list[str] = []
    seen: set[str] = set()
    stack = upstream_of(node_id, flow.edges)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if is_runnable(types[current]):
            found.append(current)
        else:
            stack.extend(upstream_of(current, flow.edges))
    return sorted(found)


def flow_plan(flow: Flow) -> dict[str, list[str]]:
    """Every runnable node of the flow, in dependency order, with its dependencies."""
    order = topological_order([n.id for n in flow.nodes], flow.edges) or []
    types = {n.id: n.type for n in flow.nodes}
    return {
        node_id: runnable_dependencies(flow, node_id)
        for node_id in order
        if is_runnable(types[node_id])
    }
