"""Canvas edits: validate, check size limits, store with compare-and-swap, broadcast a patch."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pymongo.errors import DuplicateKeyError

from flowboard.canvas.cache import FlowCache, StoredFlow
from flowboard.canvas.edits import NotFoundInFlow
from flowboard.canvas.graph import GraphError, check_graph
from flowboard.canvas.limits import FlowLimits
from flowboard.canvas.model import Edge, Flow, Node
from flowboard.canvas.patch import diff
from flowboard.canvas.store import FlowPage, FlowStore
from flowboard.canvas.write import FlowWrite
from flowboard.canvas.write import plan as plan_write
from flowboard.errors import ErrorAnswer, FlowboardError
from flowboard.ids import new_id, utcnow
from flowboard.keyed_lock import KeyedLock
from flowboard.streams.hub import StreamEventType, StreamHub

_LOGGER = logging.getLogger(__name__)

Edit = Callable[[Flow], Flow]


class FlowNotFound(FlowboardError, LookupError):
    """No flow with that id in the caller's organisation."""

    http_status, error_code = 404, "flow_not_found"

    def answer(self) -> ErrorAnswer:
        return ErrorAnswer(self.http_status, self.error_code, f"flow {self.args[0]!r} not found")


class RevisionConflict(FlowboardError):
    """The write was based on a revision that is no longer current."""

    http_status, error_code = 409, "revision_conflict"

    def __init__(self, current: int) -> None:
        super().__init__(f"flow is at revision {current}")
        self.current = current

    def answer(self) -> ErrorAnswer:
        details = {"currentRevision": self.current}
        return ErrorAnswer(self.http_status, self.error_code, str(self), details)


def sync_json(flow: Flow) -> str:
    """The SYNC_CANVAS data as JSON text (pydantic-core serialises a large flow fastest)."""
    return flow.model_dump_json(by_alias=True)


def _same_graph(before: Flow, after: Flow) -> bool:
    """The same node ids in the same order and the very same edges (a move, a data edit)."""
    if after.edges is not before.edges or len(after.nodes) != len(before.nodes):
        return False
    return all(a is b or a.id == b.id for a, b in zip(after.nodes, before.nodes, strict=True))


def _patch_event(before: Flow, after: Flow) -> str:
    return diff(before, after).to_event_json()


@dataclass
class CanvasService:
    """Every change to a flow goes through here."""

    store: FlowStore
    hub: StreamHub
    limits: FlowLimits = field(default_factory=FlowLimits)
    locks: KeyedLock = field(default_factory=KeyedLock)
    cache: FlowCache = field(default_factory=FlowCache)

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
        write = plan_write(None, None, flow)
        self.limits.check(None, flow, write.size, self.store.size)
        try:
            await self.store.insert(write)
        except DuplicateKeyError:
            if flow_id is None:
                raise
            # Another organisation's flow (an import naming its id): say nothing about it.
            return await self.create(org_id, name, nodes, edges, metadata)
        self.cache.put(StoredFlow(flow, write.parts, write.size))
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
        self.cache.drop(flow_id)
        if not await self.store.delete(org_id, flow_id):
            raise FlowNotFound(flow_id)
        self.hub.publish(flow_id, StreamEventType.FLOW_DELETED, {"id": flow_id})

    async def apply(
        self, org_id: str, flow_id: str, edit: Edit, base_revision: int | None = None
    ) -> Flow:
        """Apply an edit atomically; a stale base revision raises RevisionConflict.

        The per-flow lock orders writes (and so broadcasts) within this process;
        the revision compare-and-swap protects against writers in other processes.
        An edit starts from the version this process last stored (`FlowCache`); whatever
        that guess gets wrong (another process wrote since) makes it read the flow again.
        """
        async with self.locks.hold(flow_id):
            stored, fresh = self.cache.get(org_id, flow_id), False
            while True:
                if stored is None:
                    stored, fresh = await self._read(org_id, flow_id), True
                try:
                    prepared = self._prepare(stored, edit, base_revision)
                except (RevisionConflict, GraphError, NotFoundInFlow):
                    if fresh:
                        raise
                    stored = None  # maybe only our guess was stale: decide on the stored flow
                    continue
                if prepared is None:  # the edit changed nothing: nothing to write
                    return stored.flow
                changed, write = prepared
                if await self.store.write_if_revision(changed, write, stored.flow.revision):
                    self.cache.put(StoredFlow(changed, write.parts, write.size))
                    # Built only if someone watches the flow.
                    event = partial(_patch_event, stored.flow, changed)
                    self.hub.publish(flow_id, StreamEventType.CANVAS_PATCH, event)
                    return changed
                self.cache.drop(flow_id)
                if base_revision is not None and fresh:
                    latest = await self.get(org_id, flow_id)
                    raise RevisionConflict(latest.revision)
                stored = None

    async def _read(self, org_id: str, flow_id: str) -> StoredFlow:
        stored = await self.store.get_stored(org_id, flow_id)
        if stored is None:
            self.cache.drop(flow_id)
            raise FlowNotFound(flow_id)
        return stored

    def _prepare(
        self, stored: StoredFlow, edit: Edit, base_revision: int | None
    ) -> tuple[Flow, FlowWrite] | None:
        """The edited flow and its write (None if the edit returned the flow itself);
        raises what refuses the edit."""
        current = stored.flow
        if base_revision is not None and base_revision != current.revision:
            raise RevisionConflict(current.revision)
        changed = edit(current)
        if changed is current:
            return None
        if not _same_graph(current, changed):
            check_graph(changed.nodes, changed.edges)
        changed = changed.model_copy(
            update={"revision": current.revision + 1, "updated_at": utcnow()}
        )
        # Checked on the size of the very document written, and the write only lands on
        # the revision read: a refused edit stores nothing.
        write = plan_write(current, stored.parts, changed)

        def size_of(flow: Flow) -> int:
            return stored.size if flow is current else self.store.size(flow)

        self.limits.check(current, changed, write.size, size_of)
        return changed, write
