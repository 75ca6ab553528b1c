"""Veo through the real app and the real google-genai SDK, against the Veo fake."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from itertools import pairwise
from typing import Any

import pytest
from aiohttp import ClientResponse, FormData
from PIL import Image

from flowboard.app import create_app
from flowboard.keys import DATABASE
from tests.fakes.veo import FakeVeo, Mode, Outcome, Route, Script
from tests.fakes.veo_media import probe_mp4
from tests.servers.app import AppClient, MakeSettings, SseReader
from tests.servers.waiting import API, wait_execution

Factory = Callable[..., Any]
Reader = Callable[[ClientResponse], SseReader]


@pytest.fixture
async def fake() -> AsyncIterator[FakeVeo]:
    async with FakeVeo() as server:
        yield server


def veo_settings(fake: FakeVeo, mode: str, **extra: Any) -> dict[str, Any]:
    common = {
        "base_url": fake.base_url,
        "first_poll_seconds": 0.05,
        "poll_interval_seconds": 0.05,
        "poll_max_seconds": 0.2,
    }
    if mode == "gemini":
        return {"mode": "gemini", "api_key": fake.api_key, **common, **extra}
    return {
        "mode": "vertex",
        "project": "proj",
        "location": "us-central1",
        "access_token": fake.token,
        **common,
        **extra,
    }


async def veo_client(
    aiohttp_client: Factory,
    make_settings: MakeSettings,
    fake: FakeVeo,
    mode: str,
    estimated_every: float = 0.05,
    estimated_step: float = 5.0,
    **extra: Any,
) -> AppClient:
    settings = make_settings(
        providers={"default": "veo", "veo": veo_settings(fake, mode, **extra)},
        server={"shutdown_grace_seconds": 0.1},
        execution={
            # A policy for a 30 %-fault world: 8 tries leave a 0.3**8 chance of giving up.
            "provider_attempts": 8,
            "provider_backoff_seconds": 0.05,
            "provider_backoff_max_seconds": 0.2,
            # Polls come every 0.05-0.2 s here, not 5-30 s: the same scale for this.
            "estimated_progress_interval_seconds": estimated_every,
            "estimated_progress_step": estimated_step,
        },
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


NODE: dict[str, Any] = {
    "id": "v",
    "type": "video_gen",
    "data": {"prompt": "a lighthouse at dusk", "durationSeconds": 4, "aspectRatio": "16:9"},
}


async def run_veo(client: AppClient) -> dict[str, Any]:
    flow = await (await client.post(f"{API}/flows", json={"name": "veo", "nodes": [NODE]})).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"})
    assert resp.status == 202, await resp.text()
    started: dict[str, Any] = await resp.json()
    return started


async def asset_of(client: AppClient, execution: dict[str, Any]) -> dict[str, Any]:
    asset_id = execution["tasks"]["v"]["outputAssetId"]
    body: dict[str, Any] = await (await client.get(f"{API}/assets/{asset_id}")).json()
    return body


OUTCOMES = [
    (Script(Outcome.SUCCESS, polls_until_done=2), "COMPLETED", None, None),
    (Script(Outcome.INLINE), "COMPLETED", None, None),
    (
        Script(Outcome.ERROR, error_code=3, error_message="prompt refused by the model"),
        "FAILED",
        "provider_error",
        "prompt refused by the model",
    ),
    (
        Script(Outcome.FILTERED, filtered_reasons=("celebrity likeness",)),
        "FAILED",
        "content_filtered",
        "celebrity likeness",
    ),
    (Script(Outcome.EMPTY), "FAILED", "empty_result", None),
]


@pytest.mark.parametrize("mode", ["gemini", "vertex"])
@pytest.mark.parametrize(("script", "status", "code", "fragment"), OUTCOMES)
async def test_outcomes_end_in_the_right_state(
    aiohttp_client: Factory,
    make_settings: MakeSettings,
    fake: FakeVeo,
    mode: str,
    script: Script,
    status: str,
    code: str | None,
    fragment: str | None,
) -> None:
    fake.default_script = script
    client = await veo_client(aiohttp_client, make_settings, fake, mode)
    done = await wait_execution(client, (await run_veo(client))["id"])
    task = done["tasks"]["v"]
    assert task["status"] == status, task
    asset = await asset_of(client, done)
    assert asset["status"] == status and asset["operationId"].startswith(
        "models/" if mode == "gemini" else "projects/proj/"
    )
    if code is None:
        fetched = await client.get(task["outputUrl"])
        assert fetched.status == 200 and len(await fetched.read()) == asset["storage"]["size"]
    else:
        assert task["error"]["code"] == code
        assert fragment is None or fragment in task["error"]["message"]
    assert len(fake.starts) == 1


async def test_bursts_of_429_and_500_while_polling_do_not_end_the_job(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    fake.default_script = Script(Outcome.SUCCESS, polls_until_done=3)
    fake.fail_next(3, 429, Route.POLL)
    fake.fail_next(2, 500, Route.POLL)
    client = await veo_client(aiohttp_client, make_settings, fake, "gemini")
    done = await wait_execution(client, (await run_veo(client))["id"])
    assert done["tasks"]["v"]["status"] == "COMPLETED"
    assert fake.count(Route.POLL) >= 3 + 5


async def test_deadline_fails_with_timeout_and_cancels_at_provider(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    fake.default_script = Script(Outcome.NEVER)
    client = await veo_client(aiohttp_client, make_settings, fake, "gemini", deadline_seconds=1.0)
    done = await wait_execution(client, (await run_veo(client))["id"], timeout=20)
    task = done["tasks"]["v"]
    assert task["status"] == "FAILED" and task["error"]["code"] == "timeout"
    assert fake.cancels == [(await asset_of(client, done))["operationId"]]


async def task_updates_of_a_run(client: AppClient, sse: Reader) -> list[dict[str, Any]]:
    """Run NODE in a new flow; every state of its task seen on SSE, up to a terminal one."""
    flow = await (await client.post(f"{API}/flows", json={"name": "p", "nodes": [NODE]})).json()
    async with client.get(f"{API}/subscribe/{flow['id']}") as stream:
        reader = sse(stream)
        await reader.next()
        await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"})
        tasks: list[dict[str, Any]] = []
        while not tasks or tasks[-1]["status"] in ("PENDING", "PROCESSING"):
            frame = await reader.until(lambda f: f["event"] == "EXECUTION_UPDATE")
            tasks.append(frame["data"]["tasks"]["v"])
    return tasks


def estimated(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The task states that carry an estimated progress."""
    return [t for t in tasks if t["status"] == "PROCESSING" and t["progressEstimated"]]


async def test_progress_is_estimated_and_below_100_until_done(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo, sse: Reader
) -> None:
    fake.default_script = Script(Outcome.SUCCESS, seconds_until_done=1.5)
    client = await veo_client(aiohttp_client, make_settings, fake, "gemini", typical_seconds=2.0)
    tasks = await task_updates_of_a_run(client, sse)
    seen = [t["progress"] for t in estimated(tasks)]
    assert len(seen) >= 2 and seen == sorted(seen) and max(seen) < 100
    assert tasks[-1]["status"] == "COMPLETED" and tasks[-1]["progress"] == 100


async def test_estimated_progress_is_published_at_most_every_interval(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo, sse: Reader
) -> None:
    fake.default_script = Script(Outcome.SUCCESS, seconds_until_done=2.5)
    client = await veo_client(
        aiohttp_client, make_settings, fake, "gemini", estimated_every=0.8, typical_seconds=2.0
    )
    tasks = await task_updates_of_a_run(client, sse)
    stored = estimated(tasks)
    polls = fake.count(Route.POLL)
    assert 2 <= len(stored) <= 4 < polls  # 2.5 s of polls every 0.05-0.2 s: > 12 polls
    times = [datetime.fromisoformat(t["updatedAt"]) for t in stored]
    assert all((b - a).total_seconds() >= 0.8 for a, b in pairwise(times))
    assert tasks[-1]["status"] == "COMPLETED"


async def test_estimated_progress_is_shown_in_steps(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo, sse: Reader
) -> None:
    fake.default_script = Script(Outcome.SUCCESS, seconds_until_done=3.0)
    client = await veo_client(
        aiohttp_client, make_settings, fake, "gemini", estimated_every=0.0,
        estimated_step=30.0, typical_seconds=2.0,
    )  # fmt: skip
    tasks = await task_updates_of_a_run(client, sse)
    seen = [t["progress"] for t in estimated(tasks)]
    # 3 s of polls every 0.05-0.2 s, the guess reaching ~74 %: at 30, 60 (and no more).
    assert 1 <= len(seen) <= 2 < fake.count(Route.POLL)
    assert seen[0] >= 30 and all(b - a >= 30 for a, b in pairwise(seen))
    assert tasks[-1]["status"] == "COMPLETED" and tasks[-1]["progress"] == 100


async def test_estimated_progress_is_shown_live_but_never_written(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    fake.default_script = Script(Outcome.SUCCESS, seconds_until_done=3.0)
    client = await veo_client(aiohttp_client, make_settings, fake, "gemini", typical_seconds=2.0)
    started = await run_veo(client)
    url = f"{API}/executions/{started['id']}"
    async with asyncio.timeout(10):
        while (
            not (shown := (await (await client.get(url)).json())["tasks"]["v"])["progressEstimated"]
            or shown["progress"] < 20
        ):
            await asyncio.sleep(0.05)
    # The API shows the guess; the database holds none of it (a guess is worth no write).
    stored = await client.app[DATABASE].executions.find_one({"_id": started["id"]})
    assert stored is not None and stored["tasks"]["v"]["progress"] == 0
    done = await wait_execution(client, started["id"], timeout=30)
    assert done["tasks"]["v"]["status"] == "COMPLETED" and done["tasks"]["v"]["progress"] == 100
    stored = await client.app[DATABASE].executions.find_one({"_id": started["id"]})
    assert stored is not None and stored["tasks"]["v"]["progress"] == 100


async def left_for_resume(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> dict[str, Any]:
    """A run-node whose Veo operation is stored, then a graceful stop: left for resume."""
    fake.default_script = Script(Outcome.SUCCESS, seconds_until_done=2.0)
    first = await veo_client(aiohttp_client, make_settings, fake, "gemini")
    started = await run_veo(first)
    async with asyncio.timeout(10):
        while not (await asset_of(first, started)).get("operationId"):
            await asyncio.sleep(0.05)
    await first.close()
    return started


async def test_restart_resumes_polling_the_persisted_operation(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    started = await left_for_resume(aiohttp_client, make_settings, fake)
    assert len(fake.starts) == 1
    second = await veo_client(aiohttp_client, make_settings, fake, "gemini")
    done = await wait_execution(second, started["id"], timeout=30)
    assert done["tasks"]["v"]["status"] == "COMPLETED"
    assert len(fake.starts) == 1  # polling resumed; no second provider job
    flow = await (await second.get(f"{API}/flows/{started['flowId']}")).json()
    assert sum(n["type"] == "generated_asset" for n in flow["nodes"]) == 1


async def test_thirty_percent_of_calls_failing_still_completes_every_job(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    fake.default_script = Script(Outcome.SUCCESS, polls_until_done=2)
    fake.fail_randomly(0.3, (429, 500), seed=7)
    client = await veo_client(aiohttp_client, make_settings, fake, "gemini")
    started = [await run_veo(client) for _ in range(8)]
    done = [await wait_execution(client, s["id"], timeout=60) for s in started]
    assert all(d["tasks"]["v"]["status"] == "COMPLETED" for d in done), done
    assert len(fake.starts) == 8
    retried = [d["tasks"]["v"]["attempts"] for d in done]
    assert sum(retried) > 8  # some jobs needed more than one try, and say so


async def test_value_the_model_refuses_is_422_without_a_provider_call(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    client = await veo_client(aiohttp_client, make_settings, fake, "gemini")
    node = {**NODE, "data": {**NODE["data"], "durationSeconds": 5}}  # veo-3: 4, 6 or 8
    flow = await (await client.post(f"{API}/flows", json={"name": "x", "nodes": [node]})).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"})
    assert resp.status == 422
    err = await resp.json()
    assert err["error"]["code"] == "invalid_request" and "duration" in err["error"]["message"]
    assert fake.count() == 0


async def test_cancel_running_veo_job_cancels_at_provider_and_pending_downstream(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    fake.default_script = Script(Outcome.NEVER)
    client = await veo_client(aiohttp_client, make_settings, fake, "gemini")
    nodes = [NODE, {**NODE, "id": "b"}, {**NODE, "id": "c"}]
    edges = [{"id": "vb", "source": "v", "target": "b"}, {"id": "vc", "source": "v", "target": "c"}]
    flow = await (
        await client.post(f"{API}/flows", json={"name": "c", "nodes": nodes, "edges": edges})
    ).json()
    run = await (await client.post(f"{API}/run/{flow['id']}")).json()
    async with asyncio.timeout(10):
        while not fake.starts or not (
            await asset_of(client, await (await client.get(f"{API}/executions/{run['id']}")).json())
        ).get("operationId"):
            await asyncio.sleep(0.05)
    await client.post(f"{API}/executions/{run['id']}/cancel")
    done = await wait_execution(client, run["id"])
    assert {t["status"] for t in done["tasks"].values()} == {"CANCELLED"}
    operation = (await asset_of(client, done))["operationId"]
    async with asyncio.timeout(10):
        while operation not in fake.cancels:
            await asyncio.sleep(0.05)
    assert len(fake.starts) == 1


async def test_api_key_never_appears_in_logs_or_answers(
    aiohttp_client: Factory, make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "AIzaSyD-flowboard-test-secret-key-0123456789"
    caplog.set_level(logging.DEBUG)
    async with FakeVeo(api_key=secret) as fake:
        fake.enqueue(Script(Outcome.SUCCESS), Script(Outcome.ERROR, error_message="boom"))
        client = await veo_client(aiohttp_client, make_settings, fake, "gemini")
        answers = []
        for _ in range(2):
            started = await run_veo(client)
            done = await wait_execution(client, started["id"])
            answers += [json.dumps(done), json.dumps(await asset_of(client, done))]
        fake.api_key = "rotated"  # our key is now wrong: the provider's 400 must not echo it
        done = await wait_execution(client, (await run_veo(client))["id"])
        answers.append(json.dumps(done))
        assert done["tasks"]["v"]["status"] == "FAILED"
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for text in (logged, *answers):
        assert secret not in text and secret[8:24] not in text


@pytest.mark.parametrize("delete", [False, True], ids=["kept", "deleted"])
async def test_vertex_output_gcs_uri_is_copied_to_our_storage(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo, delete: bool
) -> None:
    client = await veo_client(
        aiohttp_client, make_settings, fake, "vertex",
        output_gcs_uri="gs://flowboard-renders/out/", delete_gcs_output=delete,
    )  # fmt: skip
    done = await wait_execution(client, (await run_veo(client))["id"])
    task = done["tasks"]["v"]
    assert task["status"] == "COMPLETED", task
    stored = await (await client.get(task["outputUrl"])).read()
    assert (await asset_of(client, done))["storage"]["size"] == len(stored)
    assert probe_mp4(stored).frames == 4 * 8
    [uri] = fake.bucket.reads  # read with the bearer token from the JSON API
    assert uri.startswith("gs://flowboard-renders/out/")
    assert fake.starts[0].body["parameters"]["storageUri"] == "gs://flowboard-renders/out/"
    assert fake.bucket.deletes == ([uri] if delete else [])


async def test_vertex_express_mode_completes_a_job(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    client = await veo_client(
        aiohttp_client, make_settings, fake, "vertex", project="", access_token="",
        api_key=fake.api_key,
    )  # fmt: skip
    done = await wait_execution(client, (await run_veo(client))["id"])
    task = done["tasks"]["v"]
    assert task["status"] == "COMPLETED", task
    assert probe_mp4(await (await client.get(task["outputUrl"])).read()).frames == 4 * 8
    assert [start.mode for start in fake.starts] == [Mode.EXPRESS]
    assert (await asset_of(client, done))["operationId"].startswith("publishers/google/models/")


@pytest.mark.parametrize("mode", ["gemini", "vertex"])
async def test_request_refused_with_400_at_start_is_invalid_request_not_retried(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo, mode: str
) -> None:
    fake.fail_next(1, 400, Route.START)
    client = await veo_client(aiohttp_client, make_settings, fake, mode)
    done = await wait_execution(client, (await run_veo(client))["id"])
    task = done["tasks"]["v"]
    assert task["status"] == "FAILED"
    assert task["error"]["code"] == "invalid_request"
    assert "HTTP 400 INVALID_ARGUMENT" in task["error"]["message"]
    assert task["attempts"] == 1
    assert fake.count(Route.START) == 1


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), colour).save(buffer, "PNG")
    return buffer.getvalue()


async def upload(client: AppClient, data: bytes) -> str:
    form = FormData()
    form.add_field("file", data, filename="frame.png", content_type="image/png")
    resp = await client.post(f"{API}/assets", data=form)
    assert resp.status == 201, await resp.text()
    asset_id: str = (await resp.json())["id"]
    return asset_id


async def interpolation_flow(client: AppClient, **data: Any) -> tuple[dict[str, Any], bytes, bytes]:
    """An uploaded image wired in as the first frame, another named as the last frame."""
    first, last = png_bytes((200, 40, 40)), png_bytes((40, 40, 200))
    first_id, last_id = await upload(client, first), await upload(client, last)
    video = {**NODE["data"], "lastFrameAssetId": last_id, **data}
    nodes = [
        {"id": "img", "type": "asset", "data": {"assetId": first_id}},
        {"id": "v", "type": "video_gen", "data": video},
    ]
    body = {"name": "i", "nodes": nodes, "edges": [{"id": "e", "source": "img", "target": "v"}]}
    resp = await client.post(f"{API}/flows", json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json(), first, last


EVERY_PARAMETER = {
    "model": "veo-3.1-generate-preview",
    "durationSeconds": 8,
    "resolution": "1080p",
    "negativePrompt": "blurry, text",
    "personGeneration": "allow_adult",
    "enhancePrompt": False,
}
# What each mode puts on the wire for EVERY_PARAMETER (+ seed and audio in vertex mode).
WIRE = {
    "gemini": {
        "durationSeconds": 8, "aspectRatio": "16:9", "resolution": "1080p",
        "negativePrompt": "blurry, text", "personGeneration": "allow_adult",
        "enhancePrompt": False,
    },
    "vertex": {
        "durationSeconds": 8, "aspectRatio": "16:9", "resolution": "1080p",
        "negativePrompt": "blurry, text", "personGeneration": "allow_adult",
        "enhancePrompt": False, "seed": 4242, "generateAudio": False,
    },
}  # fmt: skip


@pytest.mark.parametrize("mode", ["gemini", "vertex"])
async def test_every_parameter_reaches_veo_on_the_wire(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo, mode: str
) -> None:
    client = await veo_client(aiohttp_client, make_settings, fake, mode)
    # The Gemini API takes neither a seed nor an audio switch (refused there, see below).
    extra = {"seed": 4242, "generateAudio": False} if mode == "vertex" else {}
    flow, first, last = await interpolation_flow(client, **EVERY_PARAMETER, **extra)
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"})
    assert resp.status == 202, await resp.text()
    done = await wait_execution(client, (await resp.json())["id"])

    assert done["tasks"]["v"]["status"] == "COMPLETED", done
    [start] = fake.starts
    assert start.model == "veo-3.1-generate-preview"
    assert start.body["parameters"] == WIRE[mode]
    [instance] = start.body["instances"]
    assert instance["prompt"] == "a lighthouse at dusk"
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == first
    assert base64.b64decode(instance["lastFrame"]["bytesBase64Encoded"]) == last
    assert instance["lastFrame"]["mimeType"] == "image/png"


REFUSED = [
    ("gemini", {"seed": 1}, "seed: supported in vertex mode only"),
    ("gemini", {"generateAudio": False}, "generate_audio: cannot be turned off"),
    ("vertex", {"resolution": "1080p", "aspectRatio": "9:16"}, "1080p needs aspect_ratio 16:9"),
    ("vertex", {"model": "veo-2.0-generate-001", "generateAudio": True, "durationSeconds": 5},
     "does not generate audio"),
    ("vertex", {"personGeneration": "everyone"}, "person_generation: must be one of"),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "data", "fragment"), REFUSED)
async def test_parameter_the_model_refuses_is_422_without_a_call(
    aiohttp_client: Factory,
    make_settings: MakeSettings,
    fake: FakeVeo,
    mode: str,
    data: dict[str, Any],
    fragment: str,
) -> None:
    client = await veo_client(aiohttp_client, make_settings, fake, mode)
    node = {**NODE, "data": {**NODE["data"], **data}}
    flow = await (await client.post(f"{API}/flows", json={"name": "x", "nodes": [node]})).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"})
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_request" and fragment in error["message"]
    assert fake.count() == 0


async def test_last_frame_on_a_model_without_interpolation_fails_before_any_call(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeVeo
) -> None:
    client = await veo_client(aiohttp_client, make_settings, fake, "vertex")
    # veo-3.0 takes no last frame; the frame is resolved at run time, so the job fails.
    flow, _, _ = await interpolation_flow(client, model="veo-3.0-generate-001")
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"})
    assert resp.status == 202, await resp.text()
    done = await wait_execution(client, (await resp.json())["id"])
    task = done["tasks"]["v"]
    assert task["status"] == "FAILED"
    assert task["error"]["code"] == "invalid_request"
    assert "last_frame: not supported by veo-3.0-generate-001" in task["error"]["message"]
    assert fake.count() == 0
