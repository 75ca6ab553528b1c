"""`kill -9` with jobs in flight, then a restart: every job ends once, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.veo import FakeVeo, Outcome, Script
from tests.servers.serve_process import ServeProcess
from tests.test_comfyui_e2e import T2V

API = "/api/creative-flowboard"
JOBS = 20


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def _wait(session: aiohttp.ClientSession, url: str, predicate: Any, timeout: float) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            body = await _json(session, "GET", url)
            if predicate(body):
                return body
            await asyncio.sleep(0.2)


async def _operations_stored(uri: str, db_name: str, execution_id: str, count: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    query = {"executionId": execution_id, "provider": "veo", "operationId": {"$exists": True}}
    try:
        async with asyncio.timeout(60):
            while await client[db_name].assets.count_documents(query) < count:
                await asyncio.sleep(0.05)
    finally:
        await client.close()


async def test_kill_9_with_local_jobs_in_flight(
    serve_process: ServeProcess, mongo_server: str, mongo_db_name: str
) -> None:
    serve_process.env["FLOWBOARD_EXECUTION__MAX_CONCURRENT_NODES"] = str(JOBS)
    serve_process.start()
    nodes = [
        {
            "id": f"v{i}",
            "type": "video_gen",
            "data": {"prompt": f"shot {i}", "durationSeconds": 3, "resolution": "480p"},
        }
        for i in range(JOBS)
    ]
    async with aiohttp.ClientSession(serve_process.url) as session:
        flow = await _json(session, "POST", f"{API}/flows", json={"name": "r", "nodes": nodes})
        run = await _json(session, "POST", f"{API}/run/{flow['id']}")
        url = f"{API}/executions/{run['id']}"
        await _wait(
            session,
            url,
            lambda b: sum(t["status"] == "COMPLETED" for t in b["tasks"].values()) >= 2,
            60,
        )
    serve_process.kill9()
    serve_process.start()
    async with aiohttp.ClientSession(serve_process.url) as session:
        done = await _wait(session, url, lambda b: b["status"] in ("COMPLETED", "FAILED"), 180)
        async with session.get("/metrics") as resp:
            metrics = await resp.text()
    resumed = [
        line for line in metrics.splitlines() if line.startswith("flowboard_jobs_resumed_total")
    ]
    assert resumed and float(resumed[0].split()[-1]) >= 1
    assert done["status"] == "COMPLETED", done
    assert all(t["status"] == "COMPLETED" for t in done["tasks"].values())
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server)
    try:
        assets = [a async for a in client[mongo_db_name].assets.find({"executionId": run["id"]})]
    finally:
        await client.close()
    assert len(assets) == JOBS and {a["nodeId"] for a in assets} == {n["id"] for n in nodes}
    assert all(a["status"] == "COMPLETED" for a in assets)
    media = Path(serve_process.env["FLOWBOARD_DATA_DIR"]) / "media" / "videos"
    stored = sorted(media.glob("*/*.mp4"))
    assert len(stored) == JOBS
    assert {a["storage"]["key"] for a in assets} == {
        str(p.relative_to(media.parent)) for p in stored
    }


def _provider_env(veo: FakeVeo, comfy: FakeComfyUI) -> dict[str, str]:
    env = {
        "FLOWBOARD_PROVIDERS__VEO__API_KEY": veo.api_key,
        "FLOWBOARD_PROVIDERS__VEO__BASE_URL": veo.base_url,
        "FLOWBOARD_PROVIDERS__VEO__FIRST_POLL_SECONDS": "0.2",
        "FLOWBOARD_PROVIDERS__VEO__POLL_INTERVAL_SECONDS": "0.2",
        "FLOWBOARD_PROVIDERS__VEO__POLL_MAX_SECONDS": "0.5",
        "FLOWBOARD_PROVIDERS__COMFYUI__URL": comfy.url,
        "FLOWBOARD_PROVIDERS__COMFYUI__WORKFLOW": "t2v",
    }
    for key, value in T2V.items():
        env[f"FLOWBOARD_PROVIDERS__COMFYUI__WORKFLOWS__T2V__{key.upper()}"] = value
    return env


def _mixed_nodes() -> list[dict[str, Any]]:
    local = {"durationSeconds": 2, "resolution": "480p", "provider": "local"}
    veo = {"durationSeconds": 4, "resolution": "720p", "provider": "veo"}
    comfy = {"durationSeconds": 1, "resolution": "480p", "provider": "comfyui"}
    kinds = [("l", local, 8), ("v", veo, 6), ("c", comfy, 6)]
    return [
        {"id": f"{prefix}{i}", "type": "video_gen", "data": {"prompt": f"{prefix} {i}", **data}}
        for prefix, data, count in kinds
        for i in range(count)
    ]


async def test_kill_9_with_jobs_on_every_provider(
    serve_process: ServeProcess, mongo_server: str, mongo_db_name: str, tmp_path: Path
) -> None:
    async with FakeVeo() as veo, FakeComfyUI(tmp_path / "comfy") as comfy:
        veo.default_script = Script(Outcome.SUCCESS, seconds_until_done=4.0)
        comfy.step_delay = 0.03
        serve_process.env.update(_provider_env(veo, comfy))
        serve_process.env["FLOWBOARD_EXECUTION__MAX_CONCURRENT_NODES"] = "20"
        serve_process.start()
        nodes = _mixed_nodes()
        async with aiohttp.ClientSession(serve_process.url) as session:
            flow = await _json(session, "POST", f"{API}/flows", json={"name": "m", "nodes": nodes})
            run = await _json(session, "POST", f"{API}/run/{flow['id']}")
            url = f"{API}/executions/{run['id']}"
            async with asyncio.timeout(60):
                while len(veo.starts) < 6 or not comfy.prompts:
                    await asyncio.sleep(0.1)
            # Killed before an operation's name is stored, a job rightly starts again: wait
            # until all six are (a loaded machine may take a while to write them).
            await _operations_stored(mongo_server, mongo_db_name, run["id"], 6)
        serve_process.kill9()
        serve_process.start()
        async with aiohttp.ClientSession(serve_process.url) as session:
            done = await _wait(session, url, lambda b: b["status"] in ("COMPLETED", "FAILED"), 240)
        assert done["status"] == "COMPLETED", done
        assert len(veo.starts) == 6  # polling resumed; no operation started twice
        comfy_ids = [p.prompt_id for p in comfy.prompts]
        assert len(comfy_ids) == len(set(comfy_ids)) == 6  # no prompt queued twice
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server)
    try:
        assets = [a async for a in client[mongo_db_name].assets.find({"executionId": run["id"]})]
    finally:
        await client.close()
    assert sorted(a["nodeId"] for a in assets) == sorted(n["id"] for n in nodes)
    assert all(a["status"] == "COMPLETED" and a["storage"]["size"] > 0 for a in assets)
    media = Path(serve_process.env["FLOWBOARD_DATA_DIR"]) / "media" / "videos"
    assert len(list(media.glob("*/*.mp4"))) == len(nodes)
