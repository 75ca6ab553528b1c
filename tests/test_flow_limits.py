"""Flow size limits: checked with the write (a refused edit stores nothing), and a flow
already over them stays usable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowboard.app import create_app
from flowboard.canvas.model import DEFAULT_ORG, Edge, Flow, Node
from flowboard.db.documents import to_doc
from flowboard.ids import utcnow
from flowboard.keys import DATABASE
from tests.servers.app import AppClient, MakeSettings
from tests.servers.waiting import wait_execution

API = "/api/creative-flowboard"
LIMITS = {"max_nodes": 3, "max_edges": 2, "max_flow_bytes": 4096}


async def _client(aiohttp_client: Callable[..., Any], make_settings: MakeSettings) -> AppClient:
    client: AppClient = await aiohttp_client(create_app(make_settings(canvas=LIMITS)))
    return client


def _nodes(count: int) -> list[dict[str, Any]]:
    return [{"id": f"n{i}", "type": "prompt"} for i in range(count)]


async def _stored(client: AppClient, flow_id: str) -> dict[str, Any]:
    """The flow as the database holds it (not as an answer said)."""
    doc = await client.app[DATABASE].flows.find_one({"_id": flow_id})
    assert doc is not None
    return dict(doc)


async def test_one_past_the_node_cap_stores_nothing(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client = await _client(aiohttp_client, make_settings)
    flow = await (await client.post(f"{API}/flows", json={"name": "F", "nodes": _nodes(3)})).json()
    before = await _stored(client, flow["id"])
    resp = await client.post(f"{API}/flows/{flow['id']}/nodes", json={"id": "x", "type": "prompt"})
    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error["code"] == "flow_too_large" and "nodes" in error["message"]
    assert await _stored(client, flow["id"]) == before
    got = await client.get(f"{API}/flows/{flow['id']}")
    assert got.status == 200 and (await got.json())["revision"] == 1


async def test_edge_and_byte_caps_and_create_refuse_too(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client = await _client(aiohttp_client, make_settings)
    too_many = await client.post(f"{API}/flows", json={"name": "F", "nodes": _nodes(4)})
    assert too_many.status == 422 and (await too_many.json())["error"]["code"] == "flow_too_large"
    assert await client.app[DATABASE].flows.count_documents({}) == 0
    flow = await (await client.post(f"{API}/flows", json={"name": "F", "nodes": _nodes(3)})).json()
    url = f"{API}/flows/{flow['id']}"
    for edge in (
        {"id": "a", "source": "n0", "target": "n1"},
        {"id": "b", "source": "n1", "target": "n2"},
    ):
        assert (await client.post(f"{url}/edges", json=edge)).status == 201
    before = await _stored(client, flow["id"])
    third = await client.post(f"{url}/edges", json={"id": "c", "source": "n0", "target": "n2"})
    assert third.status == 422 and "edges" in (await third.json())["error"]["message"]
    big = await client.patch(f"{url}/nodes/n0", json={"data": {"text": "x" * 5000}})
    assert big.status == 422 and "bytes" in (await big.json())["error"]["message"]
    assert await _stored(client, flow["id"]) == before


async def _seed_over_cap(client: AppClient) -> str:
    """A flow written straight to the database with twice the node cap (an older version's)."""
    now = utcnow()
    nodes = [Node(id=f"n{i}", type="prompt", data={"text": f"t{i}"}) for i in range(6)]
    edges = [Edge(id=f"e{i}", source=f"n{i}", target=f"n{i + 1}") for i in range(5)]
    flow = Flow(
        id="flow_seeded", org_id=DEFAULT_ORG, name="Old", nodes=nodes, edges=edges,
        revision=1, created_at=now, updated_at=now,
    )  # fmt: skip
    await client.app[DATABASE].flows.insert_one(to_doc(flow))
    return flow.id


async def test_a_flow_over_the_caps_stays_usable(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client = await _client(aiohttp_client, make_settings)
    flow_id = await _seed_over_cap(client)
    url = f"{API}/flows/{flow_id}"
    got = await client.get(url)
    assert got.status == 200 and len((await got.json())["nodes"]) == 6
    listed = await (await client.get(f"{API}/flows")).json()
    assert [f["id"] for f in listed["items"]] == [flow_id]
    grow = await client.post(f"{url}/nodes", json={"id": "x", "type": "prompt"})
    assert grow.status == 422
    moved = await client.patch(f"{url}/nodes/n1", json={"position": {"x": 9, "y": 9}})
    assert moved.status == 200  # same size: allowed
    trimmed = await client.delete(f"{url}/nodes/n5")
    assert trimmed.status == 200
    body = await trimmed.json()
    assert len(body["nodes"]) == 5 and len(body["edges"]) == 4
    assert (await client.delete(f"{url}/edges/e0")).status == 200
    ticket = await client.post(f"{API}/subscribe/{flow_id}/ticket")
    assert ticket.status == 200
    assert (await client.delete(url)).status == 204
    assert await client.app[DATABASE].flows.count_documents({}) == 0


async def test_an_import_past_a_cap_stores_nothing(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    """Import checks the same limits on the document it writes, in all three of its paths."""
    client = await _client(aiohttp_client, make_settings)
    flow = await (await client.post(f"{API}/flows", json={"name": "F", "nodes": _nodes(3)})).json()
    document = await (await client.get(f"{API}/flows/{flow['id']}/export")).json()
    before = await _stored(client, flow["id"])
    grown = {**document, "nodes": [*document["nodes"], {"id": "x", "type": "prompt"}]}
    heavy = {**document, "nodes": [{"id": "n0", "type": "prompt", "data": {"text": "x" * 5000}}]}

    async def refused(body: dict[str, Any], what: str) -> None:
        resp = await client.post(f"{API}/flows/import", json=body)
        error = (await resp.json())["error"]
        assert resp.status == 422 and error["code"] == "flow_too_large", error
        assert what in error["message"], error

    # Replacing the caller's flow under its id: the stored flow is untouched.
    await refused(grown, "nodes")
    await refused(heavy, "bytes")
    assert await _stored(client, flow["id"]) == before
    # A new flow under the document's id, and one with a fresh id: nothing is inserted.
    assert (await client.delete(f"{API}/flows/{flow['id']}")).status == 204
    await refused(grown, "nodes")
    await refused({k: v for k, v in grown.items() if k != "id"}, "nodes")
    await refused({k: v for k, v in heavy.items() if k != "id"}, "bytes")
    assert await client.app[DATABASE].flows.count_documents({}) == 0
    # Within the caps the same document imports under its id.
    imported = await client.post(f"{API}/flows/import", json=document)
    assert imported.status == 201 and (await imported.json())["id"] == flow["id"]


async def test_a_run_whose_output_would_pass_the_cap_is_refused_up_front(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    """Its first take adds a node: refused (422) before anything runs; re-runs update it."""
    limits = {**LIMITS, "max_flow_bytes": 64 * 1024}
    client: AppClient = await aiohttp_client(create_app(make_settings(canvas=limits)))
    image = {"id": "g", "type": "image_gen", "data": {"prompt": "a fox", "aspectRatio": "2:3"}}
    body = {"name": "F", "nodes": [image, *_nodes(2)]}
    flow = await (await client.post(f"{API}/flows", json=body)).json()
    run = {"flowId": flow["id"], "nodeId": "g"}
    refused = await client.post(f"{API}/run-node", json=run)
    error = (await refused.json())["error"]
    assert refused.status == 422 and error["code"] == "flow_too_large", error
    assert await client.app[DATABASE].executions.count_documents({}) == 0
    assert (await client.delete(f"{API}/flows/{flow['id']}/nodes/n1")).status == 200
    for _ in range(2):  # the first adds the output node (3 nodes), the second updates it
        started = await client.post(f"{API}/run-node", json=run)
        assert started.status == 202, await started.text()
        done = await wait_execution(client, (await started.json())["id"])
        assert done["status"] == "COMPLETED", done
    final = await (await client.get(f"{API}/flows/{flow['id']}")).json()
    outputs = [n for n in final["nodes"] if n["type"] == "generated_asset"]
    assert len(final["nodes"]) == 3 and len(outputs) == 1
    assert outputs[0]["data"]["assetId"] == done["tasks"]["g"]["outputAssetId"]
