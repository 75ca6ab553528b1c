"""Canvas edits: validate, store with compare-and-swap, then broadcast SYNC_CANVAS."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowboard.canvas.graph import check_graph
from flowboard.canvas.model import Edge, Flow, Node
from flowboard.ids import new_id, utcnow
from flowboard.keyed_lock import KeyedLock
from flowboard.store.flows import FlowPage, FlowStore
from flowboard.streams.hub import StreamEventType, StreamHub

_LOGGER = logging.getLogger(__name__)

Edit = Callable[[Flow], Flow]


class FlowNotFound(LookupError):
    """No flow with that id in the caller's organisation."""


class RevisionConflict(Exception):
    """The write was based on a revision that is no longer current."""

    def __init__(self, current: int) -> None:
        super().__init__(f"flow is at revision {current}")
        self.current = current


def sync_payload(flow: Flow) -> dict[str, Any]:
    """The data of a SYNC_CANVAS event: the whole flow with its revision."""
    return flow.to_json()


@dataclass
class CanvasService:
    """Every change to a flow goes through here."""

    store: FlowStore
    hub: StreamHub
    locks: KeyedLock = field(default_factory=KeyedLock)

    async def create(
        self, org_id: str, name: str, nodes: list[Node], edges: list[Edge], metadata: dict[str, Any]
    ) -> Flow:
        check_graph(nodes, edges)
        now = utcnow()
        flow = Flow(
            id=new_id("flow"),
            org_id=org_id,
            name=name,
            nodes=nodes,
            edges=edges,
            metadata=metadata,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        await self.store.insert(flow)
        _LOGGER.info("flow created", extra={"flow_id": flow.id, "org_id": org_id})
        self.hub.publish(flow.id, StreamEventType.SYNC_CANVAS, sync_payload(flow))
        return flow

    async def get(self, org_id: str, flow_id: str) -> Flow:
        flow = await self.store.get(org_id, flow_id)
        if flow is None:
            raise FlowNotFound(flow_id)
        return flow

    async def list(self, org_id: str, offset: int, limit: int) -> FlowPage:
        return await self.store.list(org_id, offset, limit)

    async def delete(self, org_id: str, flow_id: str) -> None:
        if not await self.store.delete(org_id, flow_id):
            raise FlowNotFound(flow_id)
        self.hub.publish(flow_id, StreamEventType.FLOW_DELETED, {"id": flow_id})

    async def apply(
        self, org_id: str, flow_id: str, edit: Edit, base_revision: int | None = None
    ) -> Flow:
        """Apply an edit atomically; a stale base revision raises RevisionConflict.

        The per-flow lock orders writes (and so broadcasts) within this process;
        the revision compare-and-swap protects against writers in other processes.
        """
        async with self.locks.hold(flow_id):
            while True:
                current = await self.get(org_id, flow_id)
                if base_revision is not None and base_revision != current.revision:
                    raise RevisionConflict(current.revision)
                changed = edit(current)
                check_graph(changed.nodes, changed.edges)
                changed = changed.model_copy(
                    update={"revision": current.revision + 1, "updated_at": utcnow()}
                )
                stored = await self.store.replace_if_revision(changed, current.revision)
                if stored is not None:
                    self.hub.publish(flow_id, StreamEventType.SYNC_CANVAS, sync_payload(stored))
                    return stored
                if base_revision is not None:
                    latest = await self.get(org_id, flow_id)
                    raise RevisionConflict(latest.revision)
