"""Video variants through the real app and google-genai against the Veo fake."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowboard.app import create_app
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.google_image import FakeGoogleImages
from tests.fakes.google_image_wire import Outcome as ImageOutcome
from tests.fakes.google_image_wire import Script as ImageScript
from tests.fakes.veo import FakeVeo, Mode, Outcome, Script
from tests.servers.app import AppClient, MakeSettings
from tests.servers.waiting import API, wait_execution
from tests.test_comfyui_e2e import T2V
from tests.test_reuse_e2e import VIDEO, _flow

Factory = Callable[..., Any]


@pytest.fixture(params=[Mode.GEMINI, Mode.VERTEX])
async def app(
    request: pytest.FixtureRequest,
    aiohttp_client: Factory,
    make_settings: MakeSettings,
    veo: FakeVeo,
) -> AppClient:
    credentials: dict[str, Any] = (
        {"mode": "gemini", "api_key": veo.api_key}
        if request.param is Mode.GEMINI
        else {"mode": "vertex", "project": "proj", "access_token": veo.token}
    )
    settings = make_settings(
        providers={"veo": {**credentials, "base_url": veo.base_url, "poll_initial_seconds": 0.05}},
        costs={"unit": "credits", "prices": {"veo": {"per_second": 1.0}}},
        server={"shutdown_grace_seconds": 0.1},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


async def _run_variants(client: AppClient, variants: int) -> dict[str, Any]:
    node = {"id": "b", "type": "video_gen", "data": {**VIDEO, "variants": variants}}
    flow_id = await _flow(client, [node], [])
    resp = await client.post(f"{API}/run/{flow_id}")
    assert resp.status == 202, await resp.text()
    return await wait_execution(client, (await resp.json())["id"])


async def test_filtered_variants_leave_the_survivors(app: AppClient, veo: FakeVeo) -> None:
    veo.enqueue(Script(Outcome.PARTIAL, filtered_count=1, filtered_reasons=("unsafe",)))
    done = await _run_variants(app, 4)
    task = done["tasks"]["b"]
    assert task["status"] == "COMPLETED", task
    [start] = veo.starts
    assert start.body["parameters"]["sampleCount"] == 4  # one operation for the four
    assert task["warnings"] == ["1 of 4 videos were filtered: unsafe"]
    asset = await (await app.get(f"{API}/assets/{task['outputAssetId']}")).json()
    assert asset["warnings"] == task["warnings"]
    assert len(asset["outputs"]) == 3
    assert len({output["key"] for output in asset["outputs"]}) == 3
    for output in asset["outputs"]:
        body = await (await app.get(output["url"])).read()
        assert body[4:8] == b"ftyp" and len(body) == output["size"]
    # Billed for what survived: 3 videos x 4 s (the estimate was 4 x 4 s).
    assert task["cost"]["estimated"] == 16 and task["cost"]["actual"] == 12
    flow = await (await app.get(f"{API}/flows/{done['flowId']}")).json()
    [shown] = [n for n in flow["nodes"] if n["type"] == "generated_asset"]
    assert len(shown["data"]["urls"]) == 3


async def test_all_variants_filtered_fails_content_filtered(app: AppClient, veo: FakeVeo) -> None:
    veo.enqueue(Script(Outcome.FILTERED, filtered_count=4))
    done = await _run_variants(app, 4)
    task = done["tasks"]["b"]
    assert task["status"] == "FAILED"
    assert task["error"]["code"] == "content_filtered"
    assert task["cost"]["actual"] == 0


async def test_one_variant_is_one_plain_video(app: AppClient, veo: FakeVeo) -> None:
    done = await _run_variants(app, 1)
    task = done["tasks"]["b"]
    assert task["status"] == "COMPLETED" and task["warnings"] == []
    assert "sampleCount" not in veo.starts[0].body["parameters"]


async def test_imagen_keeps_the_images_it_did_not_filter(
    aiohttp_client: Factory, make_settings: MakeSettings
) -> None:
    async with FakeGoogleImages() as images:
        on = {"enabled": True, "base_url": images.base_url}
        google = {"mode": "vertex", "project": "proj", "access_token": images.token}
        settings = make_settings(
            providers={"veo": google, "imagen": on},
            server={"shutdown_grace_seconds": 0.1},
        )
        client: AppClient = await aiohttp_client(create_app(settings))
        images.enqueue(ImageScript(ImageOutcome.PARTIAL, filtered_count=1))
        data = {"prompt": "a lighthouse", "provider": "imagen", "count": 4}
        flow_id = await _flow(client, [{"id": "g", "type": "image_gen", "data": data}], [])
        resp = await client.post(f"{API}/run-node", json={"flowId": flow_id, "nodeId": "g"})
        done = await wait_execution(client, (await resp.json())["id"])
    task = done["tasks"]["g"]
    assert task["status"] == "COMPLETED", task
    assert len(task["warnings"]) == 1 and task["warnings"][0].startswith("1 of 4 images")
    asset = await (await client.get(f"{API}/assets/{task['outputAssetId']}")).json()
    assert len(asset["outputs"]) == 3 and asset["warnings"] == task["warnings"]


async def test_local_renders_variants_with_successive_seeds(
    aiohttp_client: Factory, make_settings: MakeSettings
) -> None:
    client: AppClient = await aiohttp_client(create_app(make_settings()))
    data = {"prompt": "harbour", "durationSeconds": 1, "resolution": "480p", "seed": 7}
    nodes = [{"id": "v", "type": "video_gen", "data": {**data, "variants": 3}}]
    flow_id = await _flow(client, nodes, [])
    resp = await client.post(f"{API}/run/{flow_id}")
    assert resp.status == 202, await resp.text()
    done = await wait_execution(client, (await resp.json())["id"])
    task = done["tasks"]["v"]
    assert task["status"] == "COMPLETED", task
    asset = await (await client.get(f"{API}/assets/{task['outputAssetId']}")).json()
    assert asset["parameters"]["seed"] == 7
    assert len({output["sha256"] for output in asset["outputs"]}) == 3  # three renders


async def test_comfyui_variants_are_prompts_with_successive_seeds(
    aiohttp_client: Factory, make_settings: MakeSettings, tmp_path: Path
) -> None:
    async with FakeComfyUI(tmp_path / "comfy") as fake:
        comfyui = {"url": fake.url, "workflow": "t2v", "workflows": {"t2v": T2V}}
        settings = make_settings(providers={"default": "comfyui", "comfyui": comfyui})
        client: AppClient = await aiohttp_client(create_app(settings))
        data = {"prompt": "a fox", "provider": "comfyui", "durationSeconds": 1, "seed": 40}
        nodes = [{"id": "v", "type": "video_gen", "data": {**data, "variants": 3}}]
        flow_id = await _flow(client, nodes, [])
        resp = await client.post(f"{API}/run/{flow_id}")
        assert resp.status == 202, await resp.text()
        done = await wait_execution(client, (await resp.json())["id"])
        task = done["tasks"]["v"]
        assert task["status"] == "COMPLETED", task
        assert [p.prompt["3"]["inputs"]["seed"] for p in fake.prompts] == [40, 41, 42]
        assert len({p.prompt_id for p in fake.prompts}) == 3
        asset = await (await client.get(f"{API}/assets/{task['outputAssetId']}")).json()
        assert len(asset["outputs"]) == 3
