"""The shared stream log: numbering across servers, and snapshots instead of gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from flowboard.config import ClusterSettings, Settings
from flowboard.db.database import Database
from flowboard.streams.cluster import OUTBOX_LIMIT, ClusterHub, open_hub, place
from flowboard.streams.hub import FlowChannel, StreamEventType, StreamHub
from flowboard.streams.log import Head, LoggedEvent

PATCH = StreamEventType.CANVAS_PATCH


async def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
async def hubs(replica_set: str, mongo_db_name: str) -> AsyncIterator[list[ClusterHub]]:
    """Two servers' hubs (each its own client and change stream) on one database."""
    settings = Settings(cluster=ClusterSettings(enabled=True))
    async with AsyncExitStack() as stack:
        found = []
        for _ in range(2):
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(replica_set)
            stack.push_async_callback(client.close)
            hub = await stack.enter_async_context(
                open_hub(settings, Database(client, client[mongo_db_name]))
            )
            assert isinstance(hub, ClusterHub)
            found.append(hub)
        yield found


async def test_two_servers_number_one_flow_in_one_sequence(hubs: list[ClusterHub]) -> None:
    a, b = hubs
    on_a, on_b = await a.open("f"), await b.open("f")
    for i in range(40):  # both publish at once: each number is taken once
        a.publish("f", PATCH, {"from": "a", "i": i})
        b.publish("f", PATCH, {"from": "b", "i": i})
    await eventually(lambda: on_a.seq == on_b.seq == 80)
    seen_a, seen_b = on_a.since(0), on_b.since(0)
    assert seen_a is not None and seen_b is not None
    assert [e.id for e in seen_a] == [e.id for e in seen_b]
    assert [e.seq for e in seen_a] == list(range(1, 81))
    assert len({e.data for e in seen_a}) == 80  # nothing twice, nothing lost
    for origin in ("a", "b"):  # each server's events keep its order
        mine = [e.data for e in seen_a if f'"{origin}"' in e.data]
        assert mine == [f'{{"from": "{origin}", "i": {i}}}' for i in range(40)]


async def test_a_burst_past_the_outbox_is_a_snapshot_on_the_other_server(
    hubs: list[ClusterHub],
) -> None:
    a, b = hubs
    channel = await b.open("f")
    a.publish("f", PATCH, {"i": -1})
    await eventually(lambda: channel.seq == 1)
    sink = channel.attach(None, 1)
    for i in range(OUTBOX_LIMIT + 5):  # faster than any database: the outbox overflows
        a.publish("f", PATCH, {"i": i})
    await a.flush(30)
    head = await a.log.head("f")
    assert head is not None and head.seq < OUTBOX_LIMIT
    await eventually(lambda: channel.seq == head.seq)
    assert sink.cursor == -1  # woken for a snapshot, not handed a stream with a hole
    assert channel.since(1) is None and await b.missed(channel, 1) is None
    after = channel.since(channel.seq - 4)  # what came after the marker comes as usual
    assert [e.data for e in after or []] == [
        f'{{"i": {i}}}' for i in range(OUTBOX_LIMIT + 1, OUTBOX_LIMIT + 5)
    ]


def _logged(epoch: str, seq: int) -> LoggedEvent:
    return LoggedEvent("f", Head(epoch, seq), PATCH, f'{{"seq": {seq}}}')


async def test_a_jump_in_the_log_resets_the_channel_and_a_repeat_is_dropped() -> None:
    channel = FlowChannel("f", "e", 16)
    place(channel, _logged("e", 1))
    place(channel, _logged("e", 2))
    sink = channel.attach(None, 2)
    place(channel, _logged("e", 2))  # the change stream's echo of our own
    assert channel.seq == 2 and len(channel.buffer) == 2
    place(channel, _logged("e", 4), in_order=False)  # our own, 3 still on its way: wait
    assert channel.seq == 2 and sink.cursor == 2
    place(channel, _logged("e", 5))  # the change stream: 3 and 4 never came
    assert (channel.seq, sink.cursor, channel.since(2)) == (5, -1, None)
    place(channel, _logged("e", 6))
    assert [e.id for e in channel.since(5) or []] == ["e.6"]


async def test_an_id_ahead_of_the_channel_gets_a_snapshot() -> None:
    hub = StreamHub()
    channel = hub.channel("f")
    channel.publish(PATCH, {})
    assert channel.since(1) == [] and channel.since(7) is None and channel.since(-1) is None
