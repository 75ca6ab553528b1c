"""Whole-flow runs: dependency order, concurrency, failure propagation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.servers.app import AppClient
from tests.servers.waiting import API, wait_execution


def video(node_id: str, prompt: str, x: float = 0) -> dict[str, Any]:
    data = {"prompt": prompt, "durationSeconds": 2, "resolution": "480p"}
    return {"id": node_id, "type": "video_gen", "position": {"x": x, "y": 0}, "data": data}


def ts(task: dict[str, Any], field: str) -> datetime:
    return datetime.fromisoformat(task[field])


async def run_flow(
    client: AppClient, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]
) -> dict[str, Any]:
    flow = await (
        await client.post(f"{API}/flows", json={"name": "f", "nodes": nodes, "edges": edges})
    ).json()
    resp = await client.post(f"{API}/run/{flow['id']}")
    assert resp.status == 202, await resp.text()
    started: dict[str, Any] = await resp.json()
    assert started["kind"] == "flow" and set(started["tasks"]) == {
        n["id"] for n in nodes if n["type"] == "video_gen"
    }
    return await wait_execution(client, started["id"])


async def test_independent_branches_overlap_and_downstream_waits(client: AppClient) -> None:
    nodes = [video("a", "first"), video("b", "second"), video("c", "third")]
    done = await run_flow(client, nodes, [{"id": "ac", "source": "a", "target": "c"}])
    assert done["status"] == "COMPLETED"
    a, b, c = (done["tasks"][k] for k in "abc")
    assert all(t["status"] == "COMPLETED" and t["progress"] == 100 for t in (a, b, c))
    assert ts(a, "startedAt") < ts(b, "finishedAt") and ts(b, "startedAt") < ts(a, "finishedAt")
    assert ts(c, "startedAt") >= ts(a, "finishedAt")
    assert c["dependsOn"] == ["a"]


async def test_failure_fails_downstream_and_spares_other_branch(client: AppClient) -> None:
    nodes = [
        {"id": "img", "type": "asset", "data": {"assetId": "asset_missing"}},
        video("a", "first"),
        video("b", "second"),
        video("c", "third"),
    ]
    edges = [
        {"id": "ia", "source": "img", "target": "a"},
        {"id": "ac", "source": "a", "target": "c"},
    ]
    done = await run_flow(client, nodes, edges)
    assert done["status"] == "FAILED"
    a, b, c = (done["tasks"][k] for k in "abc")
    assert a["status"] == "FAILED" and a["error"]["code"] == "input_missing"
    assert "asset_missing" in a["error"]["message"]
    assert c["status"] == "FAILED" and c["error"]["code"] == "upstream_failed"
    assert "'a'" in c["error"]["message"] and c["startedAt"] is None
    assert b["status"] == "COMPLETED"


async def test_chained_video_uses_upstream_output_as_first_frame(client: AppClient) -> None:
    done = await run_flow(
        client, [video("a", "first"), video("c", "")], [{"id": "ac", "source": "a", "target": "c"}]
    )
    assert done["status"] == "COMPLETED"
    asset_id = done["tasks"]["c"]["outputAssetId"]
    asset = await (await client.get(f"{API}/assets/{asset_id}")).json()
    assert asset["workflow"] == "image-to-video"
