"""Reuse of unchanged results through the real app: A(image_gen) → B(video_gen) on the fakes.

Provider calls are counted on the fakes themselves (`images.calls`, `veo.starts`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import FormData
from PIL import Image

from flowboard.app import create_app
from tests.fakes.google_image import FakeGoogleImages
from tests.fakes.veo import FakeVeo
from tests.servers.app import OTHER_ORG, AppClient, FlowboardClient, MakeSettings
from tests.servers.google_fakes import fast_gemini_veo
from tests.servers.waiting import API, wait_execution

Factory = Callable[..., Any]
IMAGE = {"provider": "gemini_image", "prompt": "a lighthouse at dusk", "aspectRatio": "16:9"}
VIDEO = {"provider": "veo", "prompt": "slow zoom", "durationSeconds": 4, "aspectRatio": "16:9"}


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
        server={"shutdown_grace_seconds": 0.1},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), colour).save(buffer, "PNG")
    return buffer.getvalue()


async def _upload(client: AppClient, data: bytes) -> str:
    form = FormData()
    form.add_field("file", data, filename="in.png", content_type="image/png")
    resp = await client.post(f"{API}/assets", data=form)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def _flow(client: AppClient, nodes: list[dict[str, Any]], edges: list[Any]) -> str:
    body = {"name": "reuse", "nodes": nodes, "edges": edges}
    resp = await client.post(f"{API}/flows", json=body)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


async def _chain(client: AppClient) -> str:
    nodes = [
        {"id": "a", "type": "image_gen", "data": IMAGE},
        {"id": "b", "type": "video_gen", "data": VIDEO},
    ]
    return await _flow(client, nodes, [{"id": "e1", "source": "a", "target": "b"}])


async def _run(client: AppClient, flow_id: str, **body: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/run/{flow_id}", json=body)
    assert resp.status == 202, await resp.text()
    done = await wait_execution(client, (await resp.json())["id"])
    assert done["status"] == "COMPLETED", done
    return done


async def _run_node(client: AppClient, flow_id: str, node_id: str, **body: Any) -> dict[str, Any]:
    payload = {"flowId": flow_id, "nodeId": node_id, **body}
    resp = await client.post(f"{API}/run-node", json=payload)
    assert resp.status == 202, await resp.text()
    done = await wait_execution(client, (await resp.json())["id"])
    assert done["status"] == "COMPLETED", done
    return done


async def _edit(client: AppClient, flow_id: str, node_id: str, data: dict[str, Any]) -> None:
    resp = await client.patch(f"{API}/flows/{flow_id}/nodes/{node_id}", json={"data": data})
    assert resp.status == 200, await resp.text()


def _cached(done: dict[str, Any]) -> dict[str, bool]:
    return {node_id: task["cached"] for node_id, task in done["tasks"].items()}


async def test_only_what_changed_regenerates(
    app: AppClient, images: FakeGoogleImages, veo: FakeVeo
) -> None:
    flow_id = await _chain(app)
    first = await _run(app, flow_id)
    assert _cached(first) == {"a": False, "b": False}
    assert (len(images.calls), len(veo.starts)) == (1, 1)

    await _edit(app, flow_id, "b", {**VIDEO, "prompt": "fast pan"})
    second = await _run(app, flow_id)
    assert _cached(second) == {"a": True, "b": False}
    assert second["tasks"]["a"]["outputAssetId"] == first["tasks"]["a"]["outputAssetId"]
    assert second["tasks"]["a"]["attempts"] == 0
    assert (len(images.calls), len(veo.starts)) == (1, 2)  # zero calls for A

    unchanged = await _run(app, flow_id)
    assert _cached(unchanged) == {"a": True, "b": True}
    assert unchanged["tasks"]["b"]["outputAssetId"] == second["tasks"]["b"]["outputAssetId"]
    assert (len(images.calls), len(veo.starts)) == (1, 2)

    await _edit(app, flow_id, "a", {**IMAGE, "prompt": "a lighthouse at dawn"})
    third = await _run(app, flow_id)
    assert _cached(third) == {"a": False, "b": False}
    assert (len(images.calls), len(veo.starts)) == (2, 3)

    forced = await _run(app, flow_id, force=True)
    assert _cached(forced) == {"a": False, "b": False}
    assert (len(images.calls), len(veo.starts)) == (3, 4)


async def test_run_node_is_another_take_unless_reuse(
    app: AppClient, images: FakeGoogleImages
) -> None:
    flow_id = await _chain(app)
    first = await _run_node(app, flow_id, "a")
    again = await _run_node(app, flow_id, "a")
    assert not again["tasks"]["a"]["cached"]
    assert again["tasks"]["a"]["outputAssetId"] != first["tasks"]["a"]["outputAssetId"]
    assert len(images.calls) == 2
    reused = await _run_node(app, flow_id, "a", reuse=True)
    assert reused["tasks"]["a"]["cached"]
    assert reused["tasks"]["a"]["outputAssetId"] == again["tasks"]["a"]["outputAssetId"]
    assert len(images.calls) == 2
    # The canvas shows the reused take on A's output node.
    flow = await (await app.get(f"{API}/flows/{flow_id}")).json()
    [output] = [n for n in flow["nodes"] if n["type"] == "generated_asset"]
    assert output["data"]["assetId"] == again["tasks"]["a"]["outputAssetId"]


async def test_inputs_count_by_content_not_by_id(app: AppClient, veo: FakeVeo) -> None:
    blue = _png((10, 120, 200))
    first_id = await _upload(app, blue)
    nodes = [
        {"id": "u", "type": "asset", "data": {"assetId": first_id}},
        {"id": "b", "type": "video_gen", "data": VIDEO},
    ]
    flow_id = await _flow(app, nodes, [{"id": "e1", "source": "u", "target": "b"}])
    assert _cached(await _run(app, flow_id)) == {"b": False}

    again_id = await _upload(app, blue)  # byte-identical, a new asset id
    assert again_id != first_id
    await _edit(app, flow_id, "u", {"assetId": again_id})
    assert _cached(await _run(app, flow_id)) == {"b": True}
    assert len(veo.starts) == 1

    other_id = await _upload(app, _png((200, 40, 10)))
    await _edit(app, flow_id, "u", {"assetId": other_id})
    assert _cached(await _run(app, flow_id)) == {"b": False}
    assert len(veo.starts) == 2


async def test_another_organisation_never_reuses(
    app: AppClient, images: FakeGoogleImages, veo: FakeVeo
) -> None:
    await _run(app, await _chain(app))
    other = FlowboardClient(app.server, org=OTHER_ORG, borrowed=True)
    await other.start_server()
    try:
        done = await _run(other, await _chain(other))
    finally:
        await other.close()
    assert _cached(done) == {"a": False, "b": False}
    assert (len(images.calls), len(veo.starts)) == (2, 2)


async def test_targets_run_only_what_they_need(
    app: AppClient, images: FakeGoogleImages, veo: FakeVeo
) -> None:
    nodes = [
        {"id": "a", "type": "image_gen", "data": IMAGE},
        {"id": "b", "type": "video_gen", "data": VIDEO},
        {"id": "c", "type": "image_gen", "data": {**IMAGE, "prompt": "unrelated"}},
    ]
    flow_id = await _flow(app, nodes, [{"id": "e1", "source": "a", "target": "b"}])
    done = await _run(app, flow_id, targets=["b"])
    assert set(done["tasks"]) == {"a", "b"}
    prompts = [call.body["contents"][0]["parts"][0]["text"] for call in images.calls]
    assert prompts == [IMAGE["prompt"]]
    assert len(veo.starts) == 1
    resp = await app.post(f"{API}/run/{flow_id}", json={"targets": ["nope"]})
    assert resp.status == 422, await resp.text()
