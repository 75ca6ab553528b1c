"""How a flow is laid out in the database, and what an edit writes.

A flow is a small head document (`flows`: name, metadata, revision, times, and the list
of its parts) and its nodes and edges in parts of at most `PART_ITEMS` each
(`flow_parts`). The embedded database's cost of a write grows with the document: with
the whole flow in one document, a move on a 2,000-node flow (~400 KB) cost it 150-250 ms;
a move now inserts the one part that changed (~8 KB), swaps the head on the revision
and drops the replaced part.

Parts are never changed in place: an edit inserts new parts first, then replaces the
head only if its revision is still the one read (the commit point), then deletes the
parts no longer named. A reader always finds every part its head names, or (if a writer
dropped one in between) reads the head again. A flow of at most `PART_ITEMS` nodes and
edges (most flows) stays whole in its head, one document and one write, as every flow
of older versions was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument
from pydantic import BaseModel

from flowboard.canvas.model import Flow
from flowboard.db.documents import to_doc
from flowboard.ids import new_id, utcnow

PART_ITEMS = 50
KINDS = ("nodes", "edges")


@dataclass(frozen=True)
class PartRef:
    """One part as its head names it: id, which list it holds, its size in bytes."""

    id: str
    kind: str
    bytes: int


@dataclass(frozen=True)
class FlowWrite:
    """An edit's write: parts to insert, the head to store, parts to delete after.

    size: bytes of the head and every part it names (what `canvas.max_flow_bytes` counts).
    """

    head: RawBSONDocument
    new_parts: list[RawBSONDocument]
    parts: tuple[PartRef, ...] | None  # None: a small flow, whole in its head
    dropped: list[str]
    size: int

    @property
    def new_part_ids(self) -> list[str]:
        return [str(p["_id"]) for p in self.new_parts]


def _same(chunk: Sequence[BaseModel], old: Sequence[BaseModel]) -> bool:
    return len(chunk) == len(old) and all(a is b for a, b in zip(chunk, old, strict=True))


def _layout(
    kind: str, flow_id: str, items: Sequence[BaseModel], old: Sequence[BaseModel],
    old_refs: list[PartRef], new_parts: list[RawBSONDocument],
) -> list[PartRef]:  # fmt: skip
    """The parts of one list: an old part kept where its items are the very same objects."""
    refs: list[PartRef] = []
    created_at = utcnow()
    for index, start in enumerate(range(0, len(items), PART_ITEMS)):
        chunk = items[start : start + PART_ITEMS]
        if index < len(old_refs) and _same(chunk, old[start : start + PART_ITEMS]):
            refs.append(old_refs[index])
            continue
        doc = {
            "_id": new_id("part"),
            "flowId": flow_id,
            "createdAt": created_at,  # flowboard gc spares a part younger than its grace
            "items": [item.model_dump(mode="python", by_alias=True) for item in chunk],
        }
        raw = RawBSONDocument(bson.encode(doc))
        new_parts.append(raw)
        refs.append(PartRef(str(doc["_id"]), kind, len(raw.raw)))
    return refs


def plan(before: Flow | None, before_parts: tuple[PartRef, ...] | None, after: Flow) -> FlowWrite:
    """The write that stores `after` over the stored `before` (None: a new flow)."""
    if len(after.nodes) <= PART_ITEMS and len(after.edges) <= PART_ITEMS:
        whole = RawBSONDocument(bson.encode(to_doc(after)))  # one document, one write
        dropped = [p.id for p in before_parts or ()]
        return FlowWrite(whole, [], None, dropped, len(whole.raw))
    new_parts: list[RawBSONDocument] = []
    refs: list[PartRef] = []
    for kind in KINDS:
        old_refs = [p for p in before_parts or () if p.kind == kind]
        old = getattr(before, kind) if before is not None and before_parts else []
        refs += _layout(kind, after.id, getattr(after, kind), old, old_refs, new_parts)
    kept = {p.id for p in refs}
    dropped = [p.id for p in before_parts or () if p.id not in kept]
    head: dict[str, Any] = to_doc(after.model_copy(update={"nodes": [], "edges": []}))
    del head["nodes"], head["edges"]
    head["parts"] = [{"id": p.id, "kind": p.kind, "bytes": p.bytes} for p in refs]
    raw = RawBSONDocument(bson.encode(head))
    size = len(raw.raw) + sum(p.bytes for p in refs)
    return FlowWrite(raw, new_parts, tuple(refs), dropped, size)


def size_of(flow: Flow) -> int:
    """Bytes the flow takes laid out afresh."""
    return plan(None, None, flow).size


def part_refs(head: dict[str, Any]) -> tuple[PartRef, ...] | None:
    """The parts a stored head names; None for an older version's inline document."""
    parts = head.get("parts")
    if parts is None:
        return None
    return tuple(PartRef(str(p["id"]), str(p["kind"]), int(p["bytes"])) for p in parts)
