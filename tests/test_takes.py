"""Re-running a node updates its one output node; every take stays listed on the API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flowboard.app import create_app
from flowboard.assets.model import GeneratedAsset
from flowboard.canvas.model import DEFAULT_ORG, Flow
from flowboard.db.documents import to_doc
from flowboard.ids import new_id
from flowboard.keys import ASSETS, CANVAS, DATABASE
from flowboard.runs.output_node import show_take
from tests.servers.app import AppClient, MakeSettings
from tests.servers.waiting import API, wait_execution

REAL_RUNS = 20
RERUNS = 3_000
NODE = {"id": "g", "type": "image_gen", "data": {"prompt": "a fox", "aspectRatio": "2:3"}}


async def _client(aiohttp_client: Callable[..., Any], make_settings: MakeSettings) -> AppClient:
    settings = make_settings(
        ratelimit={"enabled": False},
        execution={"max_concurrent_nodes": 8},
        logging={"level": "WARNING"},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


async def _run(client: AppClient, flow_id: str) -> dict[str, Any]:
    started = await client.post(f"{API}/run-node", json={"flowId": flow_id, "nodeId": "g"})
    assert started.status == 202, await started.text()
    return await wait_execution(client, (await started.json())["id"], timeout=90)


async def _takes(client: AppClient, flow_id: str, **query: int) -> dict[str, Any]:
    resp = await client.get(f"{API}/flows/{flow_id}/nodes/g/takes", params=query)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def _outputs(flow: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in flow["nodes"] if n["type"] == "generated_asset"]


async def _record_takes(
    client: AppClient, like: GeneratedAsset, count: int
) -> list[GeneratedAsset]:
    """`count` more finished takes of the node, each a second newer than the last."""
    takes = [
        like.model_copy(
            update={
                "id": new_id("asset"),
                "created_at": like.created_at + timedelta(seconds=i + 1),
                "updated_at": like.updated_at + timedelta(seconds=i + 1),
            }
        )
        for i in range(count)
    ]
    docs = [to_doc(t) for t in takes]
    for start in range(0, count, 250):  # each insert well within the database timeouts
        await client.app[DATABASE].assets.insert_many(docs[start : start + 250])
    return takes


async def _complete_takes(client: AppClient, flow_id: str, takes: list[GeneratedAsset]) -> None:
    """What the processor does when each run completes: show the take (many at once)."""
    canvas = client.app[CANVAS]

    async def complete(asset: GeneratedAsset) -> None:
        def edit(flow: Flow) -> Flow:
            return show_take(flow, asset) or flow

        await canvas.apply(DEFAULT_ORG, flow_id, edit)

    for start in range(0, len(takes), 100):  # in order, 100 in flight at a time
        await asyncio.gather(*(complete(a) for a in takes[start : start + 100]))


async def test_3000_reruns_leave_one_output_node(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    """3,000 re-runs of one image_gen node leave one output node showing the newest take.

    A whole run costs the embedded test database ~50 ms, so 3,000 would take minutes.
    The first 20 re-runs are real runs through the API (local image provider: engine,
    provider, storage, bus, output node), 20 at once; the other 2,980 are recorded as
    finished takes of the node (as a run records its asset) and completed the way the
    processor completes a run, `show_take` applied through the app's CanvasService, 100
    at a time. The takes API then lists all 3,000, newest first.
    """
    client = await _client(aiohttp_client, make_settings)
    flow = await (await client.post(f"{API}/flows", json={"name": "t", "nodes": [NODE]})).json()
    url = f"{API}/flows/{flow['id']}"

    runs = await asyncio.gather(*(_run(client, flow["id"]) for _ in range(REAL_RUNS)))
    assert {r["status"] for r in runs} == {"COMPLETED"}, runs
    after_runs = await (await client.get(url)).json()
    [shown] = _outputs(after_runs)
    real = await _takes(client, flow["id"], limit=REAL_RUNS)
    assert real["total"] == REAL_RUNS
    assert {t["id"] for t in real["items"]} == {r["tasks"]["g"]["outputAssetId"] for r in runs}
    newest_real = await client.app[ASSETS].get(DEFAULT_ORG, real["items"][0]["id"])
    assert newest_real is not None

    more = await _record_takes(client, newest_real, RERUNS - REAL_RUNS)
    await _complete_takes(client, flow["id"], more)

    final = await (await client.get(url)).json()
    [output] = _outputs(final)
    assert output["id"] == shown["id"] and output["position"] == shown["position"]
    assert output["data"]["assetId"] == more[-1].id
    assert len(final["nodes"]) == 2 and len(final["edges"]) == 1
    page = await _takes(client, flow["id"], limit=200)
    assert page["total"] == RERUNS
    assert [t["id"] for t in page["items"][:3]] == [t.id for t in more[-1:-4:-1]]
    last = await _takes(client, flow["id"], offset=RERUNS - 5, limit=200)
    assert len(last["items"]) == 5
    assert last["items"][-1]["createdAt"] <= last["items"][0]["createdAt"]


async def test_takes_of_another_organisation_are_404(
    client: AppClient, other_client: AppClient
) -> None:
    flow = await (await client.post(f"{API}/flows", json={"name": "t", "nodes": [NODE]})).json()
    mine = await client.get(f"{API}/flows/{flow['id']}/nodes/g/takes")
    assert mine.status == 200 and (await mine.json())["total"] == 0
    theirs = await other_client.get(f"{API}/flows/{flow['id']}/nodes/g/takes")
    assert theirs.status == 404
