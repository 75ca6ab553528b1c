"""Video generation through the real app with ComfyUI (the fake) as the provider."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from flowboard.app import create_app
from flowboard.media.poster import probe_video
from tests.fakes.comfyui import FakeComfyUI
from tests.servers.app import AppClient, MakeSettings, SseReader
from tests.servers.waiting import wait_execution

API = "/api/creative-flowboard"
WORKFLOWS = Path(__file__).parent / "fakes" / "workflows"
T2V = {
    "file": str(WORKFLOWS / "text_to_video.json"),
    "prompt": "6.text", "negative_prompt": "7.text", "width": "5.width", "height": "5.height",
    "frames": "5.length", "fps": "9.fps", "seed": "3.seed", "output_node": "10",
}  # fmt: skip
Reader = Callable[[ClientResponse], SseReader]
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(tmp_path / "comfy") as server:
        yield server


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings, fake: FakeComfyUI
) -> AppClient:
    """The real app with ComfyUI as the default provider."""
    comfyui = {"url": fake.url, "workflow": "t2v", "workflows": {"t2v": T2V}}
    settings = make_settings(providers={"default": "comfyui", "comfyui": comfyui})
    result: AppClient = await aiohttp_client(create_app(settings))
    return result


async def video_flow(client: AppClient) -> dict[str, Any]:
    data = {
        "prompt": "a red fox trotting through fresh snow",
        "provider": "comfyui",
        "durationSeconds": 1,
        "aspectRatio": "16:9",
        "resolution": "480p",
    }
    resp = await client.post(
        f"{API}/flows",
        json={"name": "Fox", "nodes": [{"id": "vid", "type": "video_gen", "data": data}]},
    )
    assert resp.status == 201, await resp.text()
    flow: dict[str, Any] = await resp.json()
    return flow


async def run_and_watch(
    client: AppClient, reader: SseReader, flow_id: str, during: Callable[[], Any] | None = None
) -> list[dict[str, Any]]:
    """Run the node; return the `vid` task of every EXECUTION_UPDATE until it ends."""
    await reader.next()  # snapshot
    resp = await client.post(f"{API}/run-node", json={"flowId": flow_id, "nodeId": "vid"})
    assert resp.status == 202, await resp.text()
    tasks: list[dict[str, Any]] = []
    async with asyncio.timeout(60):
        while not tasks or tasks[-1]["status"] not in TERMINAL:
            frame = await reader.next()
            if frame["event"] != "EXECUTION_UPDATE":
                continue
            tasks.append(frame["data"]["tasks"]["vid"])
            if during is not None and tasks[-1]["progress"] > 0:
                await during()
                during = None
    return tasks


async def test_run_node_streams_progress_and_serves_a_decodable_mp4(
    client: AppClient, fake: FakeComfyUI, sse: Reader, tmp_path: Path
) -> None:
    fake.step_delay = 0.1
    flow = await video_flow(client)
    async with client.get(f"{API}/subscribe/{flow['id']}") as stream:
        tasks = await run_and_watch(client, sse(stream), flow["id"])
    assert tasks[-1]["status"] == "COMPLETED", tasks[-1]
    progress = [t["progress"] for t in tasks if t["status"] == "PROCESSING"]
    assert len(set(progress)) >= 3 and progress[-1] < 100
    assert all(b >= a for a, b in itertools.pairwise(progress)), progress
    assert tasks[-1]["progress"] == 100 and tasks[-1]["outputUrl"]

    video = await client.get(tasks[-1]["outputUrl"])
    assert video.status == 200 and video.headers["Content-Type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(await video.read())
    assert probe_video(path).frames > 0

    [sent] = fake.prompts
    asset = await (await client.get(f"{API}/assets/{tasks[-1]['outputAssetId']}")).json()
    assert asset["operationId"] == sent.prompt_id and asset["provider"] == "comfyui"


async def test_comfyui_restart_mid_run_submits_again_and_completes(
    client: AppClient, fake: FakeComfyUI, sse: Reader
) -> None:
    fake.step_delay = 0.1
    flow = await video_flow(client)
    async with client.get(f"{API}/subscribe/{flow['id']}") as stream:
        tasks = await run_and_watch(client, sse(stream), flow["id"], during=fake.restart)
    assert fake.restarts == 1
    assert tasks[-1]["status"] == "COMPLETED", tasks[-1]
    assert tasks[-1]["attempts"] == 2
    [lost_id, again_id] = [p.prompt_id for p in fake.prompts]
    assert lost_id == again_id
    retry = next(t for t in tasks if t["statusDescription"].startswith("retrying after"))
    assert f"ComfyUI lost prompt {lost_id} (restarted?)" in retry["statusDescription"]
    asset = await (await client.get(f"{API}/assets/{tasks[-1]['outputAssetId']}")).json()
    assert asset["attempts"] == tasks[-1]["attempts"] == 2 and asset["status"] == "COMPLETED"


async def test_thirty_percent_of_calls_failing_still_completes_every_job(
    client: AppClient, fake: FakeComfyUI
) -> None:
    fake.fail_randomly(0.3, (429, 500), seed=4)
    started = []
    for _ in range(3):
        flow = await video_flow(client)
        resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "vid"})
        assert resp.status == 202
        started.append((await resp.json())["id"])
    for execution_id in started:
        done = await wait_execution(client, execution_id, timeout=90)
        assert done["tasks"]["vid"]["status"] == "COMPLETED", done["tasks"]["vid"]
    assert len({p.prompt_id for p in fake.prompts}) == len(fake.prompts) == 3
    assert len(fake.failed_requests) > 0


async def test_a_transiently_failing_start_is_attempted_the_configured_times_in_all(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings, fake: FakeComfyUI
) -> None:
    comfyui = {"url": fake.url, "workflow": "t2v", "workflows": {"t2v": T2V}}
    execution = {"provider_attempts": 3, "provider_backoff_seconds": 0.01}
    settings = make_settings(
        providers={"default": "comfyui", "comfyui": comfyui}, execution=execution
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    fake.fail_next_requests(100, status=503, path="/prompt")
    flow = await video_flow(client)
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "vid"})
    assert resp.status == 202, await resp.text()
    done = await wait_execution(client, (await resp.json())["id"], timeout=60)
    assert done["tasks"]["vid"]["status"] == "FAILED", done["tasks"]["vid"]
    posts = [r for r in fake.failed_requests if (r.method, r.path) == ("POST", "/prompt")]
    assert len(posts) == 3 and fake.requests.count(("POST", "/prompt")) == 0
    assert fake.prompts == []


async def test_readyz_reports_comfyui_reachability_without_failing(
    client: AppClient, fake: FakeComfyUI
) -> None:
    ready = await client.get("/readyz")
    assert ready.status == 200
    body = await ready.json()
    assert body["providers"] == {"comfyui": "up", "local": "unchecked"}
    await fake.stop()
    ready = await client.get("/readyz")
    assert ready.status == 200  # the database is up: jobs for ComfyUI retry meanwhile
    assert (await ready.json())["providers"]["comfyui"] == "down"
    assert (await client.get("/healthz")).status == 200


async def test_asset_records_the_probed_video_not_the_request(
    client: AppClient, fake: FakeComfyUI
) -> None:
    data = {
        "prompt": "a red fox",
        "provider": "comfyui",
        "durationSeconds": 2,
        "fps": 23.976,
        "aspectRatio": "16:9",
        "resolution": "480p",
    }
    body = {"name": "Fox", "nodes": [{"id": "vid", "type": "video_gen", "data": data}]}
    flow = await (await client.post(f"{API}/flows", json=body)).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "vid"})
    assert resp.status == 202, await resp.text()
    done = await wait_execution(client, (await resp.json())["id"], timeout=60)
    task = done["tasks"]["vid"]
    assert task["status"] == "COMPLETED", task
    asset = await (await client.get(f"{API}/assets/{task['outputAssetId']}")).json()
    [sent] = fake.prompts
    assert sent.prompt["5"]["inputs"]["width"] == 848  # requested 848 x 480 ...
    media = asset["media"]
    # ... but the fake renders sides of at most 256 px, and 48 latent frames decode to 45.
    assert (media["width"], media["height"]) == (256, 144)
    assert media["fps"] == pytest.approx(23.976, abs=0.001)
    assert media["frames"] == 45
    assert media["durationSeconds"] == pytest.approx(45 / (24000 / 1001), abs=0.01)


async def test_comfyui_restarted_twice_fails_the_task_as_lost(
    client: AppClient, fake: FakeComfyUI
) -> None:
    fake.step_delay = 0.1
    flow = await video_flow(client)
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "vid"})
    assert resp.status == 202, await resp.text()
    for submissions in (1, 2):  # restart while the first, then the resubmitted prompt runs
        async with asyncio.timeout(30):
            while len(fake.prompts) < submissions or fake.running_prompt_id is None:
                await asyncio.sleep(0.02)
        await fake.restart()
    done = await wait_execution(client, (await resp.json())["id"], timeout=60)
    task = done["tasks"]["vid"]
    assert task["status"] == "FAILED", task
    assert task["error"]["code"] == "lost_by_provider" and "twice" in task["error"]["message"]
    assert task["attempts"] == 2 and len(fake.prompts) == 2
