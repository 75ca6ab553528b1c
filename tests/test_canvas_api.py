"""Canvas REST API against the real app and a real secantusd-py server."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from tests.servers.app import AppClient

API = "/api/creative-flowboard"


async def create_flow(client: AppClient, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/flows", json={"name": "Demo", **body})
    assert resp.status == 201, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def assert_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_create_get_list_delete(client: AppClient) -> None:
    flow = await create_flow(client, metadata={"color": "blue"})
    assert flow["revision"] == 1 and flow["orgId"] == "default"
    got = await (await client.get(f"{API}/flows/{flow['id']}")).json()
    assert got == flow
    for i in range(3):
        await create_flow(client, name=f"more {i}")
    page = await (await client.get(f"{API}/flows?limit=2&offset=1")).json()
    assert page["total"] == 4 and len(page["items"]) == 2 and page["offset"] == 1
    assert (await client.delete(f"{API}/flows/{flow['id']}")).status == 204
    missing = await client.get(f"{API}/flows/{flow['id']}")
    assert missing.status == 404
    assert_error(await missing.json(), "flow_not_found")


async def test_node_and_edge_edits_bump_revision(client: AppClient) -> None:
    flow = await create_flow(client)
    url = f"{API}/flows/{flow['id']}"
    resp = await client.post(
        f"{url}/nodes", json={"id": "p", "type": "prompt", "data": {"text": "hi"}}
    )
    assert resp.status == 201
    resp = await client.post(f"{url}/nodes", json={"id": "v", "type": "video_gen"})
    body = await resp.json()
    assert body["revision"] == 3
    assert body["nodes"][1]["data"]["durationSeconds"] == 4  # defaults filled in
    resp = await client.post(f"{url}/edges", json={"id": "e1", "source": "p", "target": "v"})
    assert (await resp.json())["revision"] == 4
    resp = await client.patch(
        f"{url}/nodes/v", json={"position": {"x": 10, "y": 20}, "data": {"prompt": "a boat"}}
    )
    moved = await resp.json()
    node = next(n for n in moved["nodes"] if n["id"] == "v")
    assert node["position"] == {"x": 10.0, "y": 20.0} and node["data"]["prompt"] == "a boat"
    resp = await client.delete(f"{url}/nodes/p")
    after = await resp.json()
    assert (
        after["revision"] == 6
        and after["edges"] == []
        and [n["id"] for n in after["nodes"]] == ["v"]
    )
    renamed = await (await client.patch(url, json={"name": "Renamed"})).json()
    assert renamed["name"] == "Renamed" and renamed["revision"] == 7


async def test_invalid_canvas_is_422_with_precise_message(client: AppClient) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"nodes": [{"id": "a", "type": "nope"}]}, "invalid", "unknown node type 'nope'"),
        (
            {"nodes": [{"id": "a", "type": "video_gen", "data": {"durationSeconds": 999}}]},
            "invalid",
            "durationSeconds",
        ),
        (
            {"nodes": [{"id": "a", "type": "prompt"}, {"id": "a", "type": "prompt"}]},
            "duplicate_id",
            "duplicate node id 'a'",
        ),
        (
            {
                "nodes": [{"id": "a", "type": "prompt"}],
                "edges": [{"id": "e", "source": "a", "target": "zz"}],
            },
            "missing_node",
            "missing node 'zz'",
        ),
        (
            {
                "nodes": [{"id": "a", "type": "prompt"}, {"id": "b", "type": "prompt"}],
                "edges": [
                    {"id": "e", "source": "a", "target": "b"},
                    {"id": "f", "source": "b", "target": "a"},
                ],
            },
            "cycle",
            "cycle",
        ),
    ]
    for body, code, fragment in cases:
        resp = await client.post(f"{API}/flows", json={"name": "bad", **body})
        assert resp.status == 422, body
        err = await resp.json()
        assert_error(err, code)
        assert fragment in err["error"]["message"] or fragment in str(err["error"]["details"])
    page = await (await client.get(f"{API}/flows")).json()
    assert page["total"] == 0


async def test_edge_making_cycle_is_refused_and_nothing_changes(client: AppClient) -> None:
    flow = await create_flow(
        client,
        nodes=[{"id": "a", "type": "prompt"}, {"id": "b", "type": "video_gen"}],
        edges=[{"id": "e", "source": "a", "target": "b"}],
    )
    url = f"{API}/flows/{flow['id']}"
    resp = await client.post(f"{url}/edges", json={"source": "b", "target": "a"})
    assert resp.status == 422
    assert_error(await resp.json(), "cycle")
    assert (await (await client.get(url)).json())["revision"] == 1


async def test_stale_revision_is_409_and_winner_kept(client: AppClient) -> None:
    flow = await create_flow(client, nodes=[{"id": "a", "type": "prompt"}])
    url = f"{API}/flows/{flow['id']}/nodes/a"
    first, second = await asyncio.gather(
        client.patch(url, json={"data": {"text": "first"}}, headers={"If-Match": '"1"'}),
        client.patch(url, json={"data": {"text": "second"}, "baseRevision": 1}),
    )
    statuses = sorted([first.status, second.status])
    assert statuses == [200, 409]
    loser = first if first.status == 409 else second
    err = await loser.json()
    assert_error(err, "revision_conflict")
    assert err["error"]["details"] == {"currentRevision": 2}
    winner_text = "first" if first.status == 200 else "second"
    stored = await (await client.get(f"{API}/flows/{flow['id']}")).json()
    assert stored["revision"] == 2 and stored["nodes"][0]["data"]["text"] == winner_text


async def test_concurrent_writes_without_base_all_apply(client: AppClient) -> None:
    flow = await create_flow(client)
    url = f"{API}/flows/{flow['id']}/nodes"
    answers = await asyncio.gather(
        *(client.post(url, json={"id": f"n{i}", "type": "prompt"}) for i in range(10))
    )
    assert all(a.status == 201 for a in answers)
    stored = await (await client.get(f"{API}/flows/{flow['id']}")).json()
    assert stored["revision"] == 11 and len(stored["nodes"]) == 10


async def test_bad_requests_use_the_error_shape(client: AppClient) -> None:
    resp = await client.post(
        f"{API}/flows", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert_error(await resp.json(), "invalid_json")
    resp = await client.post(f"{API}/flows", data=b"name=x", headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert_error(await resp.json(), "unsupported_media_type")
    big = io.BytesIO(b'{"name": "x", "metadata": {"blob": "' + b"y" * 2_000_000 + b'"}}')
    resp = await client.post(f"{API}/flows", data=big, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert_error(await resp.json(), "payload_too_large")
    resp = await client.get(f"{API}/flows?limit=100000")
    assert resp.status == 400
    assert_error(await resp.json(), "invalid_query")
    resp = await client.get("/api/nowhere")
    assert resp.status == 404
    assert_error(await resp.json(), "not_found")
    resp = await client.put(f"{API}/flows")
    assert resp.status == 405
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    resp = await client.post(f"{API}/flows", json={"name": "x", "metadata": {"d": deep}})
    assert resp.status == 400
    assert_error(await resp.json(), "too_deep")
    resp = await client.post(f"{API}/flows", json={"name": "x", "orgId": "other"})
    assert resp.status == 422


async def test_health_and_openapi(client: AppClient) -> None:
    assert (await (await client.get("/healthz")).json())["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "up"
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    create = doc["paths"][f"{API}/flows"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "name" in schema["properties"] and "nodes" in schema["properties"]
    assert "VideoGenNodeData" in doc["components"]["schemas"]
    assert f"{API}/subscribe/{{flowId}}" in doc["paths"]
