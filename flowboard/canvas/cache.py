"""The last stored version of recently edited flows, so that an edit need not read it back.

Only edits use it, and only as a guess: their write is a compare-and-swap on the
revision, so an entry made stale by another process's write fails the swap and the
edit reads the flow again. Reads served to clients always come from the database.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from flowboard.canvas.model import Flow
from flowboard.canvas.write import PartRef


@dataclass(frozen=True)
class StoredFlow:
    """A flow as last written or read: its parts (None: an older inline document), its size."""

    flow: Flow
    parts: tuple[PartRef, ...] | None
    size: int


@dataclass
class FlowCache:
    """At most `capacity` flows, least recently used dropped first."""

    capacity: int = 32
    _items: OrderedDict[str, StoredFlow] = field(default_factory=OrderedDict)

    def get(self, org_id: str, flow_id: str) -> StoredFlow | None:
        found = self._items.get(flow_id)
        if found is None or found.flow.org_id != org_id:
            return None
        self._items.move_to_end(flow_id)
        return found

    def put(self, stored: StoredFlow) -> None:
        self._items[stored.flow.id] = stored
        self._items.move_to_end(stored.flow.id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop(self, flow_id: str) -> None:
        self._items.pop(flow_id, None)

    def __len__(self) -> int:
        return len(self._items)
