"""A stream hub shared by every server of a cluster, through the database's event log.

Each event a server publishes is numbered and stored in the shared log
(streams/log.py); one change stream per server (not per client) brings every stored
event to that server's channels. A channel follows its flow's log by sequence number:
the next number is kept, one seen is dropped (a server's own event reaches its channels
at once, before the change stream's echo), and a jump, a resync marker or a change
stream that lost its place resets the channel, so its subscribers get a snapshot
(SYNC_CANVAS), never a gap. A reconnect with `Last-Event-ID` replays from the channel's
buffer, else from the log, on whichever server it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from flowboard.config import Settings
from flowboard.db.database import Database
from flowboard.streams.hub import FlowChannel, Payload, StreamEvent, StreamEventType, StreamHub
from flowboard.streams.hub import encode as encode_payload
from flowboard.streams.log import EventLog, Head, LoggedEvent, new_head
from flowboard.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)

# Events of one flow waiting for the database; past this they are given up for one
# resync marker (its subscribers everywhere get a snapshot), so an outage bounds memory.
OUTBOX_LIMIT = 1024
# A flow's head is remembered this long after its last event (well inside the log's
# retention, so a remembered head is never older than the log's oldest event).
HEAD_SECONDS = 300.0
RETRY_MAX_SECONDS = 5.0
FLUSH_SECONDS = 2.0


@dataclass(frozen=True)
class _Pending:
    """An event published here and not yet stored."""

    event: StreamEventType
    data: str
    resync: bool = False


def place(channel: FlowChannel, logged: LoggedEvent, in_order: bool = True) -> None:
    """Put a stored event in its flow's channel: keep, drop (seen) or reset (a gap).

    `in_order`: it comes from the change stream, which brings every event in order; one
    stored by this server (not in order: another's event before it may still be on its
    way) is kept only when it is the very next, else left for the change stream.
    """
    head = logged.head
    if not in_order and not (head.epoch == channel.epoch and head.seq == channel.seq + 1):
        return
    if not logged.resync:
        if head.epoch == channel.epoch and head.seq <= channel.seq:
            return  # seen: our own event, delivered before the change stream's echo
        if head.epoch == channel.epoch and head.seq == channel.seq + 1:
            channel.append(logged.stream_event())
            return
        if channel.seq == 0 and head.seq == 1:  # the flow's log starts (again)
            channel.epoch = head.epoch
            channel.append(logged.stream_event())
            return
    _LOGGER.info(
        "stream channel behind the shared log: subscribers get a snapshot",
        extra={"flow_id": channel.flow_id, "seq": head.seq, "had": channel.seq},
    )
    channel.reset(head.epoch, head.seq)


class ClusterHub(StreamHub):
    """Flow channels of this server, fed from the log every server writes to."""

    def __init__(self, log: EventLog, capacity: int = 256, idle_seconds: float = 600.0) -> None:
        super().__init__(capacity=capacity, idle_seconds=idle_seconds)
        self.log = log
        self.ready = asyncio.Event()
        self._heads: dict[str, tuple[Head, float]] = {}
        self._outbox: dict[str, deque[_Pending]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._early: dict[str, list[LoggedEvent]] = {}
        self._opening: dict[str, asyncio.Future[None]] = {}
        self._token: Any = None

    # -- publishing ------------------------------------------------------------------

    def publish(self, flow_id: str, event: StreamEventType, payload: Payload) -> StreamEvent | None:
        """Queue the event for the shared log (any server may watch the flow)."""
        queue = self._outbox.setdefault(flow_id, deque())
        if len(queue) >= OUTBOX_LIMIT:
            _LOGGER.warning("stream events given up for a snapshot", extra={"flow_id": flow_id})
            queue.clear()
            queue.append(_Pending(StreamEventType.SYNC_CANVAS, "", resync=True))
        else:
            queue.append(_Pending(event, encode_payload(payload)))
        if flow_id not in self._writers:
            self._writers[flow_id] = asyncio.create_task(
                self._write(flow_id), name=f"flowboard.stream-writer.{flow_id}"
            )
        return None

    async def _write(self, flow_id: str) -> None:
        """Store the flow's queued events in order, one at a time."""
        queue = self._outbox[flow_id]
        try:
            while queue:
                await self._store(flow_id, queue.popleft())
        finally:
            del self._writers[flow_id]
            if not queue:
                self._outbox.pop(flow_id, None)

    async def _store(self, flow_id: str, pending: _Pending) -> None:
        """Take the next number of the flow's log (retrying until the database takes it)."""
        known = self._heads.get(flow_id)
        head, delay = (known[0] if known else None), 0.1
        while True:
            try:
                if head is None:
                    head = await self.log.head(flow_id) or new_head()
                logged = LoggedEvent(
                    flow_id, head.next(), pending.event, pending.data, pending.resync
                )
                await self.log.insert(logged)
            except DuplicateKeyError:
                head = None  # another server took the number: read where the log stands
                continue
            except PyMongoError as exc:
                _LOGGER.warning("stream event not stored yet: %s", exc, extra={"flow_id": flow_id})
                await asyncio.sleep(delay)
                head, delay = None, min(delay * 2, RETRY_MAX_SECONDS)
                continue
            self._arrived(logged, in_order=False)
            return

    async def flush(self, timeout: float = FLUSH_SECONDS) -> None:
        """Give queued events a moment to be stored (at shutdown)."""
        if self._writers:
            await asyncio.wait(set(self._writers.values()), timeout=timeout)

    def writers(self) -> set[asyncio.Task[None]]:
        return set(self._writers.values())

    # -- receiving ---------------------------------------------------------------------

    def _arrived(self, logged: LoggedEvent, in_order: bool = True) -> None:
        """Note a stored event (ours, or from the change stream) and show it here."""
        flow_id, head = logged.flow_id, logged.head
        known = self._heads.get(flow_id)
        if known is None or known[0].epoch != head.epoch or known[0].seq < head.seq:
            self._heads[flow_id] = (head, time.monotonic())
        early = self._early.get(flow_id)
        if early is not None:
            if in_order:
                early.append(logged)
            return
        channel = self.channels.get(flow_id)
        if channel is not None and not channel.closed:
            place(channel, logged, in_order)

    async def follow(self) -> None:
        """Bring every stored event to this server (the change stream), for good."""
        delay, failing = 0.1, False
        while True:
            try:
                await self._watch()
            except PyMongoError as exc:
                if not failing:
                    _LOGGER.warning("shared stream log unreachable: %s", exc)
                    failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                continue
            if failing:
                _LOGGER.info("shared stream log reachable again")
            delay, failing = 0.1, False

    async def _watch(self) -> None:
        pipeline = [{"$match": {"operationType": "insert"}}]
        try:
            stream = await self.log.collection.watch(pipeline, resume_after=self._token)
        except OperationFailure:
            if self._token is None:
                raise
            # Our place is no longer in the oplog: start from now, and every channel
            # here from where its log stands (a snapshot for its subscribers).
            self._token = None
            stream = await self.log.collection.watch(pipeline)
            await self._resync_all()
        async with stream:
            self.ready.set()
            async for change in stream:
                self._token = stream.resume_token
                self._arrived(LoggedEvent.from_document(change["fullDocument"]))

    async def _resync_all(self) -> None:
        for channel in list(self.channels.values()):
            head = await self.log.head(channel.flow_id) or Head(channel.epoch, channel.seq)
            channel.reset(head.epoch, head.seq)

    # -- subscribing -----------------------------------------------------------------

    async def open(self, flow_id: str) -> FlowChannel:
        """The flow's channel here, placed where the flow's log stands."""
        while (opening := self._opening.get(flow_id)) is not None:
            await asyncio.shield(opening)
        found = self.channels.get(flow_id)
        if found is not None and not found.closed:
            return found
        channel = self.channels[flow_id] = FlowChannel(flow_id, "", self.capacity)
        # Events arriving while the head is read are held, then placed after it.
        early = self._early[flow_id] = []
        opened = self._opening[flow_id] = asyncio.get_running_loop().create_future()
        try:
            head = await self.log.head(flow_id)
        except BaseException:
            del self.channels[flow_id]
            raise
        finally:
            del self._early[flow_id], self._opening[flow_id]
            opened.set_result(None)
        if head is not None:
            channel.epoch, channel.seq = head.epoch, head.seq
        for logged in early:
            place(channel, logged)
        return channel

    async def missed(self, channel: FlowChannel, seq: int) -> list[StreamEvent] | None:
        """From the channel's buffer, else from the log (the client was on another server)."""
        found = channel.since(seq)
        if found is not None or seq < 0 or seq > channel.seq:
            return found
        upto = channel.seq
        stored = await self.log.between(channel.flow_id, channel.epoch, seq, upto)
        if len(stored) != upto - seq or any(e.resync for e in stored):
            return None  # aged out of the log, or given up: a snapshot
        return [e.stream_event() for e in stored]

    def sweep(self) -> int:
        cutoff = time.monotonic() - HEAD_SECONDS
        for flow_id in [f for f, (_, at) in self._heads.items() if at < cutoff]:
            del self._heads[flow_id]
        return super().sweep()

    async def prune(self, retention: float, interval: float) -> None:
        """Delete events older than the retention, every `interval` seconds."""
        failing = False
        while True:
            try:
                pruned = await self.log.prune(retention)
            except PyMongoError as exc:
                if not failing:
                    _LOGGER.warning("stream log not pruned: %s", exc)
                failing = True
            else:
                failing = False
                if pruned:
                    _LOGGER.debug("stream log pruned", extra={"count": pruned})
            await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def open_hub(settings: Settings, database: Database) -> AsyncIterator[StreamHub]:
    """This process's hub: in memory alone, or on the shared log when clustered."""
    capacity = settings.sse.buffer_size
    if not settings.cluster.enabled:
        yield StreamHub(capacity=capacity)
        return
    log = EventLog.of(database)
    await log.ensure_indexes()
    hub = ClusterHub(log, capacity=capacity)
    retention = settings.cluster.event_retention_seconds
    tasks = {
        asyncio.create_task(hub.follow(), name="flowboard.stream-follower"),
        asyncio.create_task(
            hub.prune(retention, min(max(retention / 10, 1.0), 300.0)),
            name="flowboard.stream-pruner",
        ),
    }
    try:
        await asyncio.wait_for(hub.ready.wait(), settings.database.startup_timeout_seconds)
        yield hub
    finally:
        await hub.flush()
        await cancel_and_wait(tasks | hub.writers(), "shared stream log")
