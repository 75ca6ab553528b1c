"""Size limits of a flow, checked on the document about to be written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowboard.canvas.graph import GraphError
from flowboard.canvas.model import Flow

Sizer = Callable[[Flow], int]


class FlowTooLarge(GraphError):
    """An edit would take a flow past a size limit (nothing was stored)."""

    def __init__(self, what: str, value: int, limit: int) -> None:
        super().__init__("flow_too_large", f"the flow would have {value} {what} (limit {limit})")
        self.what = what
        self.value = value
        self.limit = limit


@dataclass(frozen=True)
class FlowLimits:
    """Largest flow an edit may produce: nodes, edges, and bytes of its stored document."""

    max_nodes: int = 2_000
    max_edges: int = 10_000
    max_bytes: int = 4 * 1_048_576

    def check(self, before: Flow | None, after: Flow, size: int, size_of: Sizer) -> None:
        """Refuse an edit that grows a measure past its limit.

        A flow already over a limit (an older version's, or the settings changed) stays
        editable as long as the edit does not make that measure larger: it can be moved
        around in, trimmed and deleted, never grown. `size` is the byte size of `after`'s
        document; `size_of` measures `before`, only needed when `after` is over.
        """
        counts = (
            ("nodes", len(after.nodes), len(before.nodes) if before else 0, self.max_nodes),
            ("edges", len(after.edges), len(before.edges) if before else 0, self.max_edges),
        )
        for what, value, previous, limit in counts:
            if value > limit and value > previous:
                raise FlowTooLarge(what, value, limit)
        if size > self.max_bytes and (before is None or size > size_of(before)):
            raise FlowTooLarge("bytes", size, self.max_bytes)

    def check_room(self, flow: Flow, nodes: int, edges: int) -> None:
        """Refuse up front work that will add `nodes` and `edges` past the limits."""
        for what, value, limit in (
            ("nodes", len(flow.nodes) + nodes, self.max_nodes),
            ("edges", len(flow.edges) + edges, self.max_edges),
        ):
            if value > limit:
                raise FlowTooLarge(what, value, limit)
