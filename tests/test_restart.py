"""`kill -9` with jobs in flight, then a restart: every job ends once, nothing is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from tests.servers.serve_process import ServeProcess

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
