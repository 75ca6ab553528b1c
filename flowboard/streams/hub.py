"""Per-flow broadcast channels with a bounded replay buffer.

Each event is serialised once, into its final wire bytes. A subscriber that is
caught up and idle gets those bytes written straight to its transport by the
publisher, so a broadcast costs one `transport.write` per subscriber and wakes no
task; only a subscriber that is behind, busy or slow is woken to catch up from the
buffer (or from a snapshot when the buffer no longer holds what it missed).
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
    SYNC_CANVAS = "SYNC_CANVAS"  # the whole flow: on (re)connect, or for one fallen behind
    CANVAS_PATCH = "CANVAS_PATCH"  # one stored edit: what changed, with the revision
    EXECUTION_UPDATE = "EXECUTION_UPDATE"
    FLOW_DELETED = "FLOW_DELETED"


# An event's data: a JSON-able value, JSON text, or a function making either (called
# only when someone watches the flow).
Payload = Any


def encode(payload: Payload) -> str:
    if callable(payload):
        payload = payload()
    return payload if isinstance(payload, str) else json.dumps(payload)


# A subscriber whose socket has this much unsent data is woken instead of written to.
PUSH_BUFFER_LIMIT = 64 * 1024


def sse_frame(event_id: str, event: str, data: str) -> bytes:
    """The text/event-stream frame (CRLF separated, as aiohttp-sse writes them)."""
    lines = "".join(f"data: {line}\r\n" for line in data.splitlines() or [""])
    return f"id: {event_id}\r\nevent: {event}\r\n{lines}\r\n".encode()


@dataclass(frozen=True)
class StreamEvent:
    """One event: `id:` is `<epoch>.<seq>`; `frame` its SSE bytes, `chunk` those bytes
    framed for HTTP chunked transfer (written directly to the transport of a subscriber
    whose response is chunked; an HTTP/1.0 one gets `frame`)."""

    seq: int
    id: str
    event: StreamEventType
    data: str
    frame: bytes = b""
    chunk: bytes = b""

    @classmethod
    def build(cls, seq: int, event_id: str, event: StreamEventType, data: str) -> StreamEvent:
        frame = sse_frame(event_id, event.value, data)
        chunk = b"%x\r\n%s\r\n" % (len(frame), frame)
        return cls(seq, event_id, event, data, frame, chunk)


@dataclass(eq=False)
class Sink:
    """One subscriber's connection: where it is in the stream and how to wake it."""

    transport: asyncio.Transport | None
    cursor: int
    # Whether the response uses chunked transfer: framing belongs to the response (an
    # HTTP/1.0 client's stream is unchunked and must get the bare SSE frames).
    chunked: bool = True
    idle: bool = False
    _wake: asyncio.Future[None] | None = None

    def wait(self) -> asyncio.Future[None]:
        """Go idle until pushed past or woken."""
        self.idle = True
        self._wake = asyncio.get_running_loop().create_future()
        return self._wake

    def wake(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def push(self, item: StreamEvent) -> bool:
        """Write the event if this sink is idle, caught up and not backed up."""
        transport = self.transport
        if (
            not self.idle
            or self.cursor != item.seq - 1
            or item.event is StreamEventType.FLOW_DELETED
            or transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > PUSH_BUFFER_LIMIT
        ):
            return False
        transport.write(item.chunk if self.chunked else item.frame)
        self.cursor = item.seq
        return True


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
    sinks: set[Sink] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.buffer = deque(maxlen=self.capacity)

    def publish(self, event: StreamEventType, payload: Payload) -> StreamEvent:
        seq = self.seq + 1
        item = StreamEvent.build(seq, f"{self.epoch}.{seq}", event, encode(payload))
        self.append(item)
        return item

    def append(self, item: StreamEvent) -> None:
        """Keep the next event (its seq follows ours) and fan it out."""
        self.seq = item.seq
        self.buffer.append(item)
        self.last_activity = time.monotonic()
        # Fan out after the publisher's own work (e.g. its HTTP answer) is done.
        asyncio.get_running_loop().call_soon(self._fan_out, item)

    def reset(self, epoch: str, seq: int) -> None:
        """Continue at another place of the stream: everyone behind it gets a snapshot."""
        self.epoch, self.seq = epoch, seq
        self.buffer.clear()
        self.last_activity = time.monotonic()
        for sink in self.sinks:
            sink.cursor = -1
            sink.wake()

    def _fan_out(self, item: StreamEvent) -> None:
        for sink in list(self.sinks):
            if not sink.push(item):
                sink.wake()

    def attach(self, transport: asyncio.Transport | None, cursor: int) -> Sink:
        sink = Sink(transport, cursor)
        self.sinks.add(sink)
        self.subscribers = len(self.sinks)
        return sink

    def detach(self, sink: Sink) -> None:
        self.sinks.discard(sink)
        self.subscribers = len(self.sinks)
        self.last_activity = time.monotonic()

    def close(self) -> None:
        """Wake every subscriber for the last time (the service is stopping)."""
        self.closed = True
        for sink in self.sinks:
            sink.wake()

    def parse_last_event_id(self, value: str | None) -> int | None:
        """The sequence number of an id this channel issued, else None (send a snapshot)."""
        if not value:
            return None
        epoch, _, seq = value.partition(".")
        if epoch != self.epoch or not seq.isdigit():
            return None
        return int(seq)

    def since(self, seq: int) -> list[StreamEvent] | None:
        """Events after `seq`, or None when some of them have left the buffer."""
        if seq == self.seq:
            return []
        if seq > self.seq or seq < 0:  # an id from before a reset: not ours to replay
            return None
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
    _made: int = 0

    def channel(self, flow_id: str) -> FlowChannel:
        """The flow's channel, made when a subscriber comes."""
        found = self.channels.get(flow_id)
        if found is None or found.closed:
            # Ids carry the channel's own epoch: one made anew (after a sweep) starts its
            # sequence again, and an id of the old one must get a snapshot, not a replay.
            self._made += 1
            found = FlowChannel(flow_id, f"{self.epoch}-{self._made}", self.capacity)
            self.channels[flow_id] = found
        return found

    def publish(self, flow_id: str, event: StreamEventType, payload: Payload) -> StreamEvent | None:
        """Send to the flow's subscribers; nothing is kept for a flow nobody watches.

        (A subscriber starts from a snapshot, so buffering for unwatched flows, most of
        them when thousands of jobs run, would only cost memory and CPU.) A callable
        payload is called only when the flow is watched; a str is JSON already.
        """
        found = self.channels.get(flow_id)
        if found is None or found.closed:
            return None
        return found.publish(event, payload)

    async def open(self, flow_id: str) -> FlowChannel:
        """The channel a subscriber attaches to (a shared hub first learns where it is)."""
        return self.channel(flow_id)

    async def missed(self, channel: FlowChannel, seq: int) -> list[StreamEvent] | None:
        """What a client that saw `seq` missed, or None (send a snapshot)."""
        return channel.since(seq)

    def forget_unused(self, flow_id: str) -> None:
        """Drop a channel that never had a subscriber nor an event (a refused subscribe)."""
        found = self.channels.get(flow_id)
        if found is not None and not found.sinks and found.seq == 0:
            del self.channels[flow_id]

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
