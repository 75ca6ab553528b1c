"""Per-flow broadcast channels with a bounded replay buffer.

Each event is serialised once; subscribers hold only a cursor (the last sequence
number they sent) and wait on one shared future per channel, so a broadcast costs
one wake-up per subscriber and no per-subscriber queue.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_LOGGER = logging.getLogger(__name__)


class StreamEventType(StrEnum):
    SYNC_CANVAS = "SYNC_CANVAS"
    EXECUTION_UPDATE = "EXECUTION_UPDATE"
    FLOW_DELETED = "FLOW_DELETED"


@dataclass(frozen=True)
class StreamEvent:
    """One event as sent on the wire: `id:` is `<epoch>.<seq>`, data is JSON text."""

    seq: int
    id: str
    event: StreamEventType
    data: str


@dataclass
class FlowChannel:
    """Recent events of one flow and the subscribers waiting for the next."""

    flow_id: str
    epoch: str
    capacity: int
    seq: int = 0
    subscribers: int = 0
    closed: bool = False
    last_activity: float = field(default_factory=time.monotonic)
    buffer: deque[StreamEvent] = field(init=False)
    _changed: asyncio.Future[None] = field(init=False)

    def __post_init__(self) -> None:
        self.buffer = deque(maxlen=self.capacity)
        self._changed = asyncio.get_running_loop().create_future()

    def publish(self, event: StreamEventType, payload: Any) -> StreamEvent:
        self.seq += 1
        item = StreamEvent(self.seq, f"{self.epoch}.{self.seq}", event, json.dumps(payload))
        self.buffer.append(item)
        self.last_activity = time.monotonic()
        changed, self._changed = self._changed, asyncio.get_running_loop().create_future()
        if not changed.done():
            changed.set_result(None)
        return item

    def close(self) -> None:
        """Wake every subscriber for the last time (the service is stopping)."""
        self.closed = True
        self._changed.cancel()

    def changed(self) -> asyncio.Future[None]:
        """A future resolved by the next publish."""
        return self._changed

    def since(self, seq: int) -> list[StreamEvent] | None:
        """Events after `seq`, or None when some of them have left the buffer."""
        if seq >= self.seq:
            return []
        if not self.buffer or self.buffer[0].seq > seq + 1:
            return None
        start = seq - self.buffer[0].seq + 1
        return list(itertools.islice(self.buffer, start, None))


@dataclass
class StreamHub:
    """All flow channels of this process."""

    capacity: int = 256
    idle_seconds: float = 600.0
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    channels: dict[str, FlowChannel] = field(default_factory=dict)

    def channel(self, flow_id: str) -> FlowChannel:
        found = self.channels.get(flow_id)
        if found is None or found.closed:
            found = FlowChannel(flow_id, self.epoch, self.capacity)
            self.channels[flow_id] = found
        return found

    def publish(self, flow_id: str, event: StreamEventType, payload: Any) -> StreamEvent:
        return self.channel(flow_id).publish(event, payload)

    def parse_last_event_id(self, value: str | None) -> int | None:
        """Return the sequence number of an id issued by this process, else None."""
        if not value:
            return None
        epoch, _, seq = value.partition(".")
        if epoch != self.epoch or not seq.isdigit():
            return None
        return int(seq)

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def sweep(self) -> int:
        """Drop channels with no subscriber and no recent activity; return how many."""
        cutoff = time.monotonic() - self.idle_seconds
        idle = [
            k for k, c in self.channels.items() if c.subscribers == 0 and c.last_activity < cutoff
        ]
        for key in idle:
            del self.channels[key]
        return len(idle)

    def subscriber_count(self) -> int:
        return sum(c.subscribers for c in self.channels.values())

    def __iter__(self) -> Iterator[FlowChannel]:
        return iter(self.channels.values())
