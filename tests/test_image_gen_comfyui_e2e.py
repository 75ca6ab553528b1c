"""image_gen through the real app with ComfyUI (the fake) running an image workflow."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from flowboard.app import create_app
from flowboard.providers.comfyui_image import IMAGE_SIZES
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.comfyui_media import scaled_size
from tests.servers.app import AppClient, MakeSettings
from tests.servers.waiting import API, wait_execution

WORKFLOWS = Path(__file__).parent / "fakes" / "workflows"
T2V = {
    "file": str(WORKFLOWS / "text_to_video.json"),
    "prompt": "6.text", "width": "5.width", "height": "5.height", "frames": "5.length",
    "output_node": "10",
}  # fmt: skip
T2I = {
    "file": str(WORKFLOWS / "text_to_image.json"),
    "prompt": "6.text", "negative_prompt": "7.text", "width": "5.width", "height": "5.height",
    "seed": "3.seed", "batch_size": "5.batch_size", "output_node": "9",
}  # fmt: skip


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(tmp_path / "comfy") as server:
        yield server


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings, fake: FakeComfyUI
) -> AppClient:
    comfyui = {
        "url": fake.url, "workflow": "t2v", "image_workflow": "t2i",
        "workflows": {"t2v": T2V, "t2i": T2I},
    }  # fmt: skip
    settings = make_settings(providers={"image_default": "comfyui", "comfyui": comfyui})
    result: AppClient = await aiohttp_client(create_app(settings))
    return result


async def run(client: AppClient, data: dict[str, Any]) -> dict[str, Any]:
    nodes = [{"id": "g", "type": "image_gen", "data": data}]
    flow = await (await client.post(f"{API}/flows", json={"name": "c", "nodes": nodes})).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "g"})
    assert resp.status == 202, await resp.text()
    return await wait_execution(client, (await resp.json())["id"])


async def test_three_images_from_the_image_workflow(client: AppClient, fake: FakeComfyUI) -> None:
    done = await run(client, {"prompt": "a lighthouse", "count": 3, "aspectRatio": "3:2"})

    task = done["tasks"]["g"]
    assert task["status"] == "COMPLETED", task
    asset = await (await client.get(f"{API}/assets/{task['outputAssetId']}")).json()
    assert len(asset["outputs"]) == 3
    size = scaled_size(*IMAGE_SIZES["3:2"])  # the fake draws scaled-down PNGs
    for record in asset["outputs"]:
        data = await (await client.get(record["url"])).read()
        with Image.open(io.BytesIO(data)) as image:
            assert (image.format, image.size) == ("PNG", size)
        assert (record["width"], record["height"]) == size
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
    [submitted] = fake.prompts
    assert submitted.prompt["5"]["inputs"] == {"width": 1216, "height": 832, "batch_size": 3}


async def test_a_count_the_workflow_cannot_make_is_a_422(client: AppClient) -> None:
    data = {"prompt": "x", "count": 2, "workflow": "t2v"}
    nodes = [{"id": "g", "type": "image_gen", "data": data}]
    flow = await (await client.post(f"{API}/flows", json={"name": "c", "nodes": nodes})).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "g"})
    assert resp.status == 422, await resp.text()
    assert "batch_size" in (await resp.json())["error"]["message"]
