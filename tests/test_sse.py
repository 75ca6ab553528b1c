"""Live canvas sync over SSE, read by a real HTTP client from the real app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import ClientResponse

from flowboard.app import create_app
from flowboard.keys import HUB
from tests.servers.app import AppClient, FlowboardClient, MakeSettings, SseReader

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


async def test_one_canvas_patch_per_change_in_order(client: AppClient, sse: Reader) -> None:
    flow_id = await _flow(client)
    async with client.get(f"{API}/subscribe/{flow_id}") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        reader = sse(resp)
        snapshot = await reader.next()
        assert snapshot["event"] == "SYNC_CANVAS" and snapshot["data"]["revision"] == 1
        revisions = await _edits(client, flow_id)
        frames = [await reader.next() for _ in revisions]
    # Each edit is a CANVAS_PATCH carrying only what changed (issue 12: the snapshot
    # is for (re)connecting; before, every edit sent the whole flow as SYNC_CANVAS).
    assert [f["event"] for f in frames] == ["CANVAS_PATCH"] * 5
    assert [f["data"]["revision"] for f in frames] == revisions == [2, 3, 4, 5, 6]
    assert [f["data"]["baseRevision"] for f in frames] == [1, 2, 3, 4, 5]
    assert all(f["data"]["id"] == flow_id for f in frames)
    seqs = [int(f["id"].split(".")[1]) for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert [n["id"] for n in frames[0]["data"]["nodes"]] == ["a"]
    assert frames[2]["data"]["edges"][0]["id"] == "e" and frames[2]["data"]["nodes"] == []
    assert [n["id"] for n in frames[3]["data"]["nodes"]] == ["b"]
    assert frames[3]["data"]["nodes"][0]["position"] == {"x": 5.0, "y": 6.0}
    assert frames[4]["data"]["removedNodes"] == ["a"]
    assert frames[4]["data"]["removedEdges"] == ["e"]
    assert "name" not in frames[4]["data"] and "metadata" not in frames[4]["data"]


async def test_patches_rebuild_the_flow_a_client_holds(client: AppClient, sse: Reader) -> None:
    """Applying each patch to the snapshot, as a canvas page does, gives the stored flow."""
    flow_id = await _flow(client)
    async with client.get(f"{API}/subscribe/{flow_id}") as resp:
        reader = sse(resp)
        held = (await reader.next())["data"]
        revisions = await _edits(client, flow_id)
        await client.patch(f"{API}/flows/{flow_id}", json={"name": "Renamed", "metadata": {"k": 1}})
        for _ in range(len(revisions) + 1):
            held = apply_patch(held, (await reader.next())["data"])
    stored = await (await client.get(f"{API}/flows/{flow_id}")).json()
    assert held == stored and held["name"] == "Renamed"


def apply_patch(flow: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A client's side of CANVAS_PATCH (README): upsert by id, drop removed ids."""
    assert patch["baseRevision"] == flow["revision"]
    result = dict(flow)
    for key, removed in (("nodes", "removedNodes"), ("edges", "removedEdges")):
        items = {item["id"]: item for item in flow[key] if item["id"] not in patch[removed]}
        items.update((item["id"], item) for item in patch[key])
        result[key] = list(items.values())
    for key in ("name", "metadata"):
        if key in patch:
            result[key] = patch[key]
    result["revision"], result["updatedAt"] = patch["revision"], patch["updatedAt"]
    return result


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


async def _http10_events(client: AppClient, flow_id: str) -> tuple[bytes, bytes]:
    """Open the stream as an HTTP/1.0 client over a raw socket; make one edit."""
    assert isinstance(client, FlowboardClient)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            f"GET {API}/subscribe/{flow_id} HTTP/1.0\r\n"
            f"Host: {client.server.host}\r\nAuthorization: Bearer {client.token}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # the snapshot
        await client.patch(f"{API}/flows/{flow_id}/nodes/a", json={"position": {"x": 1, "y": 2}})
        body += await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # pushed to the socket
        return head, body
    finally:
        writer.close()


async def test_http10_client_gets_unchunked_sse_frames(client: AppClient) -> None:
    flow_id = await _flow(client)
    await client.post(f"{API}/flows/{flow_id}/nodes", json={"id": "a", "type": "prompt"})
    head, body = await _http10_events(client, flow_id)
    assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower()
    frames = [f for f in body.decode().split("\r\n\r\n") if f]
    assert len(frames) == 2
    fields = [line.split(": ", 1)[0] for frame in frames for line in frame.split("\r\n")]
    assert set(fields) == {"id", "event", "data"}  # no chunk-size lines
    assert [f.split("\r\n")[1] for f in frames] == ["event: SYNC_CANVAS", "event: CANVAS_PATCH"]
    patch = json.loads(frames[1].split("\r\n")[2].removeprefix("data: "))
    assert patch["revision"] == 3 and patch["nodes"][0]["position"] == {"x": 1.0, "y": 2.0}
