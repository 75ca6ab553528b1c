"""Live canvas sync over SSE, read by a real HTTP client from the real app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import ClientResponse

from flowboard.app import create_app
from flowboard.keys import HUB
from tests.servers.app import AppClient, MakeSettings, SseReader

API = "/api/creative-flowboard"
Reader = Callable[[ClientResponse], SseReader]


async def _flow(client: AppClient) -> str:
    resp = await client.post(f"{API}/flows", json={"name": "Live"})
    flow_id: str = (await resp.json())["id"]
    return flow_id


async def _edits(client: AppClient, flow_id: str) -> list[int]:
    """Create node, add edge, move node, delete node; return the revisions answered."""
    url = f"{API}/flows/{flow_id}"
    answers = [
        await client.post(f"{url}/nodes", json={"id": "a", "type": "prompt"}),
        await client.post(f"{url}/nodes", json={"id": "b", "type": "video_gen"}),
        await client.post(f"{url}/edges", json={"id": "e", "source": "a", "target": "b"}),
        await client.patch(f"{url}/nodes/b", json={"position": {"x": 5, "y": 6}}),
        await client.delete(f"{url}/nodes/a"),
    ]
    return [(await a.json())["revision"] for a in answers]


async def test_one_sync_canvas_per_change_in_order(client: AppClient, sse: Reader) -> None:
    flow_id = await _flow(client)
    async with client.get(f"{API}/subscribe/{flow_id}") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        reader = sse(resp)
        snapshot = await reader.next()
        assert snapshot["event"] == "SYNC_CANVAS" and snapshot["data"]["revision"] == 1
        revisions = await _edits(client, flow_id)
        frames = [await reader.next() for _ in revisions]
    assert [f["event"] for f in frames] == ["SYNC_CANVAS"] * 5
    assert [f["data"]["revision"] for f in frames] == revisions == [2, 3, 4, 5, 6]
    seqs = [int(f["id"].split(".")[1]) for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert frames[2]["data"]["edges"][0]["id"] == "e"
    assert frames[3]["data"]["nodes"][1]["position"] == {"x": 5.0, "y": 6.0}
    assert [n["id"] for n in frames[4]["data"]["nodes"]] == ["b"]


async def _seen_one_edit(client: AppClient, sse: Reader) -> tuple[str, dict[str, Any]]:
    """A new flow, and the frame a subscriber saw for adding node 'a' (then it left)."""
    flow_id = await _flow(client)
    async with client.get(f"{API}/subscribe/{flow_id}") as resp:
        reader = sse(resp)
        await reader.next()
        await client.post(f"{API}/flows/{flow_id}/nodes", json={"id": "a", "type": "prompt"})
        return flow_id, await reader.next()


async def test_reconnect_replays_exactly_the_missed_events(client: AppClient, sse: Reader) -> None:
    flow_id, seen = await _seen_one_edit(client, sse)
    url = f"{API}/flows/{flow_id}"
    for i in range(3):  # missed while disconnected
        await client.patch(f"{url}/nodes/a", json={"data": {"text": f"t{i}"}})
    headers = {"Last-Event-ID": seen["id"]}
    async with client.get(f"{API}/subscribe/{flow_id}", headers=headers) as resp:
        reader = sse(resp)
        replayed = [await reader.next() for _ in range(3)]
        await client.patch(f"{url}/nodes/a", json={"data": {"text": "live"}})
        live = await reader.next()
    assert [f["data"]["revision"] for f in replayed] == [3, 4, 5]
    assert [f["data"]["nodes"][0]["data"]["text"] for f in replayed] == ["t0", "t1", "t2"]
    assert live["data"]["revision"] == 6


async def test_too_old_or_foreign_id_gets_a_snapshot(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings, sse: Reader
) -> None:
    client: AppClient = await aiohttp_client(create_app(make_settings(sse={"buffer_size": 2})))
    flow_id = await _flow(client)
    url = f"{API}/flows/{flow_id}"
    async with client.get(f"{API}/subscribe/{flow_id}") as resp:
        first = await sse(resp).next()
    for i in range(5):
        await client.post(f"{url}/nodes", json={"id": f"n{i}", "type": "prompt"})
    for last_id in (first["id"], "otherboot.1"):
        async with client.get(
            f"{API}/subscribe/{flow_id}", headers={"Last-Event-ID": last_id}
        ) as resp:
            snap = await sse(resp).next()
        assert snap["event"] == "SYNC_CANVAS" and snap["data"]["revision"] == 6
        assert len(snap["data"]["nodes"]) == 5


async def test_unknown_flow_is_404(client: AppClient) -> None:
    resp = await client.get(f"{API}/subscribe/flow_missing")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "flow_not_found"
    assert "flow_missing" not in client.app[HUB].channels


async def test_nothing_is_kept_for_a_flow_nobody_watches(client: AppClient) -> None:
    flow_id = await _flow(client)
    assert await _edits(client, flow_id) == [2, 3, 4, 5, 6]
    assert flow_id not in client.app[HUB].channels


async def test_an_id_of_a_swept_channel_gets_a_snapshot(client: AppClient, sse: Reader) -> None:
    flow_id, seen = await _seen_one_edit(client, sse)
    url = f"{API}/flows/{flow_id}"
    hub = client.app[HUB]
    for _ in range(50):  # the stream's end is noticed by the server a moment later
        if hub.channels[flow_id].subscribers == 0:
            break
        await asyncio.sleep(0.02)
    hub.idle_seconds = 0
    assert hub.sweep() == 1
    for i in range(3):  # the new channel's sequence restarts below the client's id
        await client.patch(f"{url}/nodes/a", json={"data": {"text": f"t{i}"}})
    async with client.get(
        f"{API}/subscribe/{flow_id}", headers={"Last-Event-ID": seen["id"]}
    ) as resp:
        snap = await sse(resp).next()
    assert snap["event"] == "SYNC_CANVAS" and snap["data"]["revision"] == 5
    assert snap["data"]["nodes"][0]["data"]["text"] == "t2"


async def test_heartbeat_and_dropped_clients_leave_nothing(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client: AppClient = await aiohttp_client(
        create_app(make_settings(sse={"heartbeat_seconds": 0.1}))
    )
    hub = client.app[HUB]
    flow_id = await _flow(client)
    baseline = len(asyncio.all_tasks())
    responses = [await client.get(f"{API}/subscribe/{flow_id}") for _ in range(5)]
    raw = await responses[0].content.readuntil(b": ping")
    assert raw.endswith(b": ping")
    assert hub.channel(flow_id).subscribers == 5
    for resp in responses:
        resp.close()
    for _ in range(50):
        if hub.channel(flow_id).subscribers == 0:
            break
        await asyncio.sleep(0.05)
    assert hub.channel(flow_id).subscribers == 0
    await asyncio.sleep(0.1)
    assert len(asyncio.all_tasks()) <= baseline


async def test_flow_deleted_event_ends_stream(client: AppClient, sse: Reader) -> None:
    flow_id = await _flow(client)
    async with client.get(f"{API}/subscribe/{flow_id}") as resp:
        reader = sse(resp)
        await reader.next()
        await client.delete(f"{API}/flows/{flow_id}")
        gone = await reader.next()
        assert gone["event"] == "FLOW_DELETED" and gone["data"] == {"id": flow_id}
        rest = await resp.content.read()
    assert rest == b""
