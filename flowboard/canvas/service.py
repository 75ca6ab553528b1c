"""Canvas edits: validate, check size limits, store with compare-and-swap, broadcast a patch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pymongo.errors import DuplicateKeyError

from flowboard.canvas.graph import check_graph
from flowboard.canvas.limits import FlowLimits
from flowboard.canvas.model import Edge, Flow, Node
from flowboard.canvas.patch import diff
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


def sync_json(flow: Flow) -> str:
    """The SYNC_CANVAS data as JSON text (pydantic-core serialises a large flow fastest)."""
    return flow.model_dump_json(by_alias=True)


def _patch_event(before: Flow, after: Flow) -> str:
    return diff(before, after).to_event_json()


@dataclass
class CanvasService:
    """Every change to a flow goes through here."""

    store: FlowStore
    hub: StreamHub
    limits: FlowLimits = field(default_factory=FlowLimits)
    locks: KeyedLock = field(default_factory=KeyedLock)

    async def create(
        self,
        org_id: str,
        name: str,
        nodes: list[Node],
        edges: list[Edge],
        metadata: dict[str, Any],
        flow_id: str | None = None,
    ) -> Flow:
        """Store a new flow (under `flow_id` if given and free; taken elsewhere: a fresh id)."""
        check_graph(nodes, edges)
        now = utcnow()
        flow = Flow(
            id=flow_id or new_id("flow"),
            org_id=org_id,
            name=name,
            nodes=nodes,
            edges=edges,
            metadata=metadata,
            revision=1,
            created_at=now,
            updated_at=now,
        )
        document = self.store.encode(flow)
        self.limits.check(None, flow, len(document.raw), self.store.size)
        try:
            await self.store.insert(document)
        except DuplicateKeyError:
            if flow_id is None:
                raise
            # Another organisation's flow (an import naming its id): say nothing about it.
            return await self.create(org_id, name, nodes, edges, metadata)
        _LOGGER.info("flow created", extra={"flow_id": flow.id, "org_id": org_id})
        self.hub.publish(flow.id, StreamEventType.SYNC_CANVAS, partial(sync_json, flow))
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
                # Checked on the very document written below, and the write only lands on
                # the revision read: a refused edit stores nothing.
                document = self.store.encode(changed)
                self.limits.check(current, changed, len(document.raw), self.store.size)
                if await self.store.replace_if_revision(changed, document, current.revision):
                    # Built only if someone watches the flow.
                    event = partial(_patch_event, current, changed)
                    self.hub.publish(flow_id, StreamEventType.CANVAS_PATCH, event)
                    return changed
                if base_revision is not None:
                    latest = await self.get(org_id, flow_id)
                    raise RevisionConflict(latest.revision)
