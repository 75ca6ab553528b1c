"""A flow stored as a head and parts: moves rewrite one part, readers never see a torn
flow, nothing is left behind, and an older inline document is read and laid out."""

from __future__ import annotations

import asyncio
from typing import Any

from flowboard.canvas.model import DEFAULT_ORG, Flow, Node
from flowboard.canvas.write import PART_ITEMS
from flowboard.db.documents import to_doc
from flowboard.ids import utcnow
from flowboard.keys import CANVAS, DATABASE
from tests.servers.app import AppClient

API = "/api/creative-flowboard"
NODES = 3 * PART_ITEMS + 7


def _nodes(count: int) -> list[dict[str, Any]]:
    return [{"id": f"n{i}", "type": "prompt", "data": {"text": f"t{i}"}} for i in range(count)]


async def _named_parts(client: AppClient, flow_id: str) -> set[str]:
    head = await client.app[DATABASE].flows.find_one({"_id": flow_id})
    assert head is not None and "nodes" not in head
    return {p["id"] for p in head["parts"]}


async def _all_parts(client: AppClient) -> set[str]:
    return {d["_id"] async for d in client.app[DATABASE].flow_parts.find({}, {"_id": 1})}


async def _settled(client: AppClient, flow_id: str) -> set[str]:
    """The parts in the database once the replaced ones' deletes (sent w=0) were applied."""
    named = await _named_parts(client, flow_id)
    async with asyncio.timeout(10):
        while (stored := await _all_parts(client)) != named:
            await asyncio.sleep(0.05)
    return stored


async def test_a_move_rewrites_one_part_and_readers_see_whole_flows(client: AppClient) -> None:
    body = {"name": "big", "nodes": _nodes(NODES)}
    flow = await (await client.post(f"{API}/flows", json=body)).json()
    url = f"{API}/flows/{flow['id']}"
    before = await _settled(client, flow["id"])
    assert len(before) == 4  # 157 nodes in parts of 50, no edges

    async def move(i: int) -> None:
        resp = await client.patch(f"{url}/nodes/n{i * 7}", json={"position": {"x": i, "y": 1}})
        assert resp.status == 200, await resp.text()

    async def read() -> None:
        for _ in range(20):
            got = await (await client.get(url)).json()
            assert [n["id"] for n in got["nodes"]] == [f"n{i}" for i in range(NODES)]

    await asyncio.gather(*(move(i) for i in range(20)), read(), read())
    after = await _settled(client, flow["id"])
    assert len(after) == 4 and len(after & before) <= 1  # every part holding a moved node
    final = await (await client.get(url)).json()
    assert final["revision"] == 21
    assert {n["id"]: n["position"]["x"] for n in final["nodes"]}["n133"] == 19
    one = await client.patch(f"{url}/nodes/n{NODES - 1}", json={"position": {"x": 5, "y": 5}})
    assert one.status == 200
    assert len(await _settled(client, flow["id"]) - after) == 1  # only the last part
    assert (await client.delete(url)).status == 204
    assert await _all_parts(client) == set()


async def test_an_older_inline_document_is_read_then_laid_out(client: AppClient) -> None:
    now = utcnow()
    nodes = [Node(id=f"n{i}", type="prompt", data={"text": f"t{i}"}) for i in range(60)]
    flow = Flow(id="flow_inline", org_id=DEFAULT_ORG, name="Old", nodes=nodes, revision=3,
                created_at=now, updated_at=now)  # fmt: skip
    await client.app[DATABASE].flows.insert_one(to_doc(flow))
    url = f"{API}/flows/{flow.id}"
    got = await (await client.get(url)).json()
    assert len(got["nodes"]) == 60 and got["revision"] == 3
    listed = await (await client.get(f"{API}/flows")).json()
    assert [len(f["nodes"]) for f in listed["items"]] == [60]
    client.app[CANVAS].cache.drop(flow.id)
    moved = await client.patch(f"{url}/nodes/n59", json={"position": {"x": 1, "y": 2}})
    assert moved.status == 200
    assert len(await _settled(client, flow.id)) == 2
    again = await (await client.get(url)).json()
    assert again["revision"] == 4 and again["nodes"][59]["position"] == {"x": 1, "y": 2}
    assert [n["data"] for n in again["nodes"]] == [n["data"] for n in got["nodes"]]


async def test_a_small_flow_stays_whole_in_one_document(client: AppClient) -> None:
    body = {"name": "small", "nodes": _nodes(PART_ITEMS)}
    flow = await (await client.post(f"{API}/flows", json=body)).json()
    url = f"{API}/flows/{flow['id']}"
    assert (await client.patch(f"{url}/nodes/n3", json={"position": {"x": 3, "y": 3}})).ok
    head = await client.app[DATABASE].flows.find_one({"_id": flow["id"]})
    assert head is not None and len(head["nodes"]) == PART_ITEMS and "parts" not in head
    assert await _all_parts(client) == set()
    grown = await client.post(f"{url}/nodes", json={"id": "x", "type": "prompt"})
    assert grown.status == 201  # one past a part: laid out in two parts
    assert len(await _settled(client, flow["id"])) == 2
    assert (await client.delete(f"{url}/nodes/x")).status == 200  # whole again
    await _settled_inline(client, flow["id"])


async def _settled_inline(client: AppClient, flow_id: str) -> None:
    head = await client.app[DATABASE].flows.find_one({"_id": flow_id})
    assert head is not None and "parts" not in head and len(head["nodes"]) == PART_ITEMS
    async with asyncio.timeout(10):
        while await _all_parts(client):
            await asyncio.sleep(0.05)
