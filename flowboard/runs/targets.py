"""Partial runs: only the target nodes of a flow and what they need."""

from __future__ import annotations

from collections.abc import Iterable

from flowboard.errors import InvalidRequest


class UnknownTarget(InvalidRequest):
    """A target names no runnable node of the flow."""


def restrict(plan: dict[str, list[str]], targets: Iterable[str]) -> dict[str, list[str]]:
    """The plan cut down to the targets and their runnable ancestors, in plan order."""
    wanted = list(dict.fromkeys(targets))
    unknown = [t for t in wanted if t not in plan]
    if unknown:
        raise UnknownTarget(f"targets are not runnable nodes of the flow: {', '.join(unknown)}")
    needed: set[str] = set()
    stack = list(wanted)
    while stack:
        node_id = stack.pop()
        if node_id not in needed:
            needed.add(node_id)
            stack.extend(plan[node_id])
    return {node_id: deps for node_id, deps in plan.items() if node_id in needed}
