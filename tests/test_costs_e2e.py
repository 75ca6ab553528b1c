"""Cost estimates and recorded costs through the real app, on the Gemini image and Veo fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flowboard.app import create_app
from tests.fakes.google_image import FakeGoogleImages
from tests.fakes.veo import FakeVeo
from tests.servers.app import AppClient, MakeSettings
from tests.servers.google_fakes import fast_gemini_veo
from tests.servers.waiting import API, wait_execution
from tests.test_reuse_e2e import IMAGE, VIDEO, _edit, _flow, _run

Factory = Callable[..., Any]
PRICES = {
    "gemini_image": {"per_image": 0.5},
    "veo": {"per_second": 0.25, "per_run": 0.1},
}


@pytest.fixture
async def app(
    aiohttp_client: Factory, make_settings: MakeSettings, images: FakeGoogleImages, veo: FakeVeo
) -> AppClient:
    veo_settings = fast_gemini_veo(veo)
    settings = make_settings(
        providers={
            "veo": veo_settings,
            "gemini_image": {"enabled": True, "base_url": images.base_url},
        },
        costs={"unit": "credits", "prices": PRICES},
        server={"shutdown_grace_seconds": 0.1},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


async def _dry_run(client: AppClient, flow_id: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/run/{flow_id}", json={"dryRun": True, **body})
    assert resp.status == 200, await resp.text()
    plan: dict[str, Any] = await resp.json()
    return plan


def _actions(plan: dict[str, Any]) -> dict[str, str]:
    return {node["nodeId"]: node["action"] for node in plan["nodes"]}


async def _mixed_flow(client: AppClient) -> str:
    nodes = [
        {"id": "a", "type": "image_gen", "data": IMAGE},
        {"id": "b", "type": "video_gen", "data": VIDEO},
        {"id": "c", "type": "image_gen", "data": {**IMAGE, "prompt": "a harbour", "count": 2}},
    ]
    return await _flow(client, nodes, [{"id": "e1", "source": "a", "target": "b"}])


async def test_dry_run_estimate_equals_the_cost_of_the_run(
    app: AppClient, images: FakeGoogleImages, veo: FakeVeo
) -> None:
    flow_id = await _mixed_flow(app)
    first_plan = await _dry_run(app, flow_id)
    assert _actions(first_plan) == {"a": "run", "b": "wait", "c": "run"}
    # a: 1 image x 0.5; b: 4 s x 0.25 + 0.1 a run; c: 2 images x 0.5
    assert first_plan["estimatedCost"] == pytest.approx(0.5 + 1.1 + 1.0)
    assert first_plan["unit"] == "credits"
    assert (len(images.calls), len(veo.starts)) == (0, 0)  # a dry run starts nothing
    first = await _run(app, flow_id)
    assert first["cost"]["actual"] == pytest.approx(first_plan["estimatedCost"])

    # b's prompt and c's count change; a is unchanged: reused, costing nothing.
    await _edit(app, flow_id, "b", {**VIDEO, "prompt": "fast pan", "durationSeconds": 6})
    await _edit(app, flow_id, "c", {**IMAGE, "prompt": "a harbour", "count": 3})
    plan = await _dry_run(app, flow_id)
    assert _actions(plan) == {"a": "reuse", "b": "run", "c": "run"}
    by_node = {node["nodeId"]: node for node in plan["nodes"]}
    assert by_node["a"]["estimatedCost"] == 0
    assert by_node["a"]["reuseAssetId"] == first["tasks"]["a"]["outputAssetId"]
    assert by_node["b"]["units"] == {"seconds": 6.0, "images": 0, "runs": 1}

    done = await _run(app, flow_id)
    assert {n: t["cached"] for n, t in done["tasks"].items()} == {"a": True, "b": False, "c": False}
    assert done["cost"]["actual"] == pytest.approx(plan["estimatedCost"])
    assert done["cost"]["estimated"] == pytest.approx(plan["estimatedCost"])
    assert plan["estimatedCost"] == pytest.approx(6 * 0.25 + 0.1 + 3 * 0.5)
    for node_id, task in done["tasks"].items():
        assert task["cost"]["actual"] == pytest.approx(by_node[node_id]["estimatedCost"])
        assert task["cost"]["actualUnits"] == by_node[node_id]["units"]
    # Gemini makes one image a request: run 1 asked 1 (a) + 2 (c), run 2 asked 3 (c).
    assert (len(images.calls), len(veo.starts)) == (6, 2)


async def test_force_and_targets_shape_the_plan(app: AppClient) -> None:
    flow_id = await _mixed_flow(app)
    await _run(app, flow_id)
    assert _actions(await _dry_run(app, flow_id)) == {"a": "reuse", "b": "reuse", "c": "reuse"}
    assert (await _dry_run(app, flow_id))["estimatedCost"] == 0
    forced = await _dry_run(app, flow_id, force=True)
    assert _actions(forced) == {"a": "run", "b": "run", "c": "run"}
    assert _actions(await _dry_run(app, flow_id, targets=["b"], force=True)) == {
        "a": "run",
        "b": "run",
    }


async def test_failed_task_costs_nothing(app: AppClient, veo: FakeVeo) -> None:
    nodes = [{"id": "b", "type": "video_gen", "data": VIDEO}]
    flow_id = await _flow(app, nodes, [])
    veo.fail_next(10, status=400)
    resp = await app.post(f"{API}/run/{flow_id}")
    assert resp.status == 202
    done = await wait_execution(app, (await resp.json())["id"])
    assert done["status"] == "FAILED"
    assert done["tasks"]["b"]["cost"]["estimated"] == pytest.approx(1.1)
    assert done["tasks"]["b"]["cost"]["actual"] == 0
    assert done["cost"] == {"unit": "credits", "estimated": 1.1, "actual": 0.0}
