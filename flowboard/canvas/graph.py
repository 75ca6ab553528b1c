"""Structural rules of a flow: unique ids, edges between existing nodes, no cycles."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence

from flowboard.canvas.model import Edge, Node
from flowboard.errors import ErrorAnswer, FlowboardError


class GraphError(FlowboardError, ValueError):
    """A flow breaks a structural rule; `code` names which."""

    http_status = 422

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def answer(self) -> ErrorAnswer:
        return ErrorAnswer(self.http_status, self.code, self.message)


def _first_duplicate(ids: Iterable[str]) -> str | None:
    seen: set[str] = set()
    for item in ids:
        if item in seen:
            return item
        seen.add(item)
    return None


def topological_order(node_ids: Sequence[str], edges: Sequence[Edge]) -> list[str] | None:
    """Return node ids in dependency order, or None when the edges contain a cycle."""
    indegree = dict.fromkeys(node_ids, 0)
    children: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        children[edge.source].append(edge.target)
        indegree[edge.target] += 1
    ready = deque(n for n in node_ids if indegree[n] == 0)
    order: list[str] = []
    while ready:
        current = ready.popleft()
        order.append(current)
        for child in children[current]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return order if len(order) == len(node_ids) else None


def check_graph(nodes: Sequence[Node], edges: Sequence[Edge]) -> None:
    """Raise GraphError for the first structural rule the flow breaks."""
    if (dup := _first_duplicate(n.id for n in nodes)) is not None:
        raise GraphError("duplicate_id", f"duplicate node id {dup!r}")
    if (dup := _first_duplicate(e.id for e in edges)) is not None:
        raise GraphError("duplicate_id", f"duplicate edge id {dup!r}")
    node_ids = {n.id for n in nodes}
    for edge in edges:
        for end in (edge.source, edge.target):
            if end not in node_ids:
                raise GraphError("missing_node", f"edge {edge.id!r} refers to missing node {end!r}")
        if edge.source == edge.target:
            raise GraphError("cycle", f"edge {edge.id!r} connects node {edge.source!r} to itself")
    if topological_order([n.id for n in nodes], edges) is None:
        raise GraphError("cycle", "the edges would make a cycle")


def upstream_of(node_id: str, edges: Sequence[Edge]) -> list[str]:
    """Return the ids of the nodes with an edge into node_id, in edge order."""
    return [e.source for e in edges if e.target == node_id]


def downstream_closure(start: Iterable[str], edges: Sequence[Edge]) -> set[str]:
    """Return every node reachable from the start nodes (the start nodes excluded)."""
    children: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        children[edge.source].append(edge.target)
    seen: set[str] = set()
    stack = list(start)
    while stack:
        for child in children[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen
