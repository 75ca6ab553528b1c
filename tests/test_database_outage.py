"""The embedded database killed or hung under a real `flowboard serve` with jobs running.

Timings are asserted only where issue 12 states them as behaviour: `/readyz` answers 503
within 2 s of the database dying or hanging, API calls answer 503 within the configured
timeouts, a killed database is back within 10 s by itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from pymongo import AsyncMongoClient

from tests.servers.serve_process import ServeProcess, database_child, database_uri

API = "/api/creative-flowboard"
JOBS = 10
SELECTION_SECONDS = 2.0
SOCKET_SECONDS = 5.0
# One API call meets at most a socket timeout, then a retry's server selection.
CALL_BOUND = SELECTION_SECONDS + SOCKET_SECONDS + 1.0


def _nodes() -> list[dict[str, Any]]:
    data = {"durationSeconds": 4, "resolution": "480p"}
    return [
        {"id": f"v{i}", "type": "video_gen", "data": {"prompt": f"shot {i}", **data}}
        for i in range(JOBS)
    ]


def _start(serve: ServeProcess) -> None:
    serve.env.update(
        {
            "FLOWBOARD_EXECUTION__MAX_CONCURRENT_NODES": str(JOBS),
            "FLOWBOARD_DATABASE__SERVER_SELECTION_TIMEOUT_SECONDS": str(SELECTION_SECONDS),
            "FLOWBOARD_DATABASE__SOCKET_TIMEOUT_SECONDS": str(SOCKET_SECONDS),
        }
    )
    serve.start()


async def _json(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as resp:
        assert resp.status < 300, await resp.text()
        return await resp.json()


async def _start_run(session: aiohttp.ClientSession) -> tuple[str, str]:
    """A flow of JOBS video nodes, run; returns (flow id, execution id) once renders run."""
    flow = await _json(session, "POST", f"{API}/flows", json={"name": "o", "nodes": _nodes()})
    run = await _json(session, "POST", f"{API}/run/{flow['id']}", json={})
    async with asyncio.timeout(60):
        while True:
            body = await _json(session, "GET", f"{API}/executions/{run['id']}")
            tasks = body["tasks"].values()
            # The database keeps its last ~100 ms of writes in memory (like mongod with
            # j:false), so the run is older than that when it dies.
            if all(t["status"] == "PROCESSING" for t in tasks) and any(
                t["progress"] > 0 for t in tasks
            ):
                await asyncio.sleep(0.3)
                return flow["id"], run["id"]
            await asyncio.sleep(0.1)


async def _ready_status(session: aiohttp.ClientSession) -> tuple[int, float]:
    started = time.monotonic()
    async with session.get("/readyz") as resp:
        await resp.read()
        return resp.status, time.monotonic() - started


async def _first_readyz(session: aiohttp.ClientSession, status: int, since: float) -> float:
    """Seconds from `since` until /readyz answers `status` (polled back to back)."""
    async with asyncio.timeout(60):
        while (await _ready_status(session))[0] != status:
            await asyncio.sleep(0.05)
    return time.monotonic() - since


async def _timed_call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    started = time.monotonic()
    async with session.request(method, url, **kw) as resp:
        body = await resp.json()
        return resp.status, dict(resp.headers), body, time.monotonic() - started


async def _check_exactly_once(
    session: aiohttp.ClientSession, serve: ServeProcess, flow_id: str, execution_id: str
) -> None:
    """Every job COMPLETED once: one asset, one stored video, one output node per node."""
    url = f"{API}/executions/{execution_id}"
    async with asyncio.timeout(180):
        while (done := await _json(session, "GET", url))["status"] not in ("COMPLETED", "FAILED"):
            await asyncio.sleep(0.3)
    assert done["status"] == "COMPLETED", done
    assert all(t["status"] == "COMPLETED" for t in done["tasks"].values()), done
    flow = await _json(session, "GET", f"{API}/flows/{flow_id}")
    outputs = [n for n in flow["nodes"] if n["type"] == "generated_asset"]
    expected = sorted(f"v{i}" for i in range(JOBS))
    assert sorted(n["data"]["sourceNodeId"] for n in outputs) == expected
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_uri(database_child(serve)))
    try:
        assets = [a async for a in client.flowboard.assets.find({"executionId": execution_id})]
    finally:
        await client.close()
    assert sorted(a["nodeId"] for a in assets) == expected
    assert all(a["status"] == "COMPLETED" for a in assets), assets
    media = Path(serve.env["FLOWBOARD_DATA_DIR"]) / "media"
    stored = sorted(str(p.relative_to(media)) for p in media.glob("videos/*/*.mp4"))
    assert stored == sorted(a["storage"]["key"] for a in assets)
    for asset in assets:
        assert (media / asset["storage"]["key"]).stat().st_size == asset["storage"]["size"]


async def test_kill_9_database_with_jobs_running(embedded_serve: ServeProcess) -> None:
    # A first restart 5 s after the death (default 0.5 s), so that the API call below
    # surely meets the dead database: it starts within 2 s of the death (asserted) and a
    # call waits up to the 2 s server selection, so with a 2 s backoff a loaded machine
    # could see the restarted database answer it. It is still back within 10 s.
    embedded_serve.env["FLOWBOARD_DATABASE__RESTART_BACKOFF_SECONDS"] = "5"
    _start(embedded_serve)
    assert embedded_serve.process is not None
    serve_pid = embedded_serve.process.pid
    async with aiohttp.ClientSession(embedded_serve.url) as session:
        flow_id, execution_id = await _start_run(session)
        first = database_child(embedded_serve)
        first.kill()
        killed = time.monotonic()
        readyz_503 = await _first_readyz(session, 503, killed)
        status, headers, body, took = await _timed_call(session, "GET", f"{API}/flows/{flow_id}")
        assert status == 503 and body["error"]["code"] == "database_unavailable", body
        assert int(headers["Retry-After"]) >= 1
        assert took < CALL_BOUND
        back = await _first_readyz(session, 200, killed)
        second = database_child(embedded_serve, other_than=first.pid)
        await _check_exactly_once(session, embedded_serve, flow_id, execution_id)
    assert readyz_503 <= 2.0, readyz_503
    assert back <= 10.0, back
    assert second.pid != first.pid
    assert embedded_serve.process is not None and embedded_serve.process.pid == serve_pid
    log = embedded_serve.log.read_text()
    assert "embedded database killed by SIGKILL" in log
    assert "Traceback" not in log


async def _calls_while_hung(session: aiohttp.ClientSession, flow_id: str, until: float) -> int:
    """Reads and writes while the database is stopped: each a 503 within the timeouts."""
    calls = 0
    while time.monotonic() < until - CALL_BOUND:
        for method, url, body in (
            ("GET", f"{API}/flows/{flow_id}", None),
            ("POST", f"{API}/flows", {"name": f"during-{calls}"}),
        ):
            status, headers, answer, took = await _timed_call(session, method, url, json=body)
            assert status == 503, answer
            assert answer["error"]["code"] == "database_unavailable"
            assert headers["Retry-After"] == "5"
            assert took < CALL_BOUND, (method, took)
            calls += 1
    return calls


async def test_sigstop_database_for_20_seconds(embedded_serve: ServeProcess) -> None:
    _start(embedded_serve)
    async with aiohttp.ClientSession(embedded_serve.url) as session:
        flow_id, execution_id = await _start_run(session)
        database = database_child(embedded_serve)
        os.kill(database.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            readyz_503 = await _first_readyz(session, 503, stopped)
            calls = await _calls_while_hung(session, flow_id, stopped + 20.0)
            await asyncio.sleep(max(0.0, stopped + 20.0 - time.monotonic()))
        finally:
            os.kill(database.pid, signal.SIGCONT)
        resumed = time.monotonic()
        back = await _first_readyz(session, 200, resumed)
        await _check_exactly_once(session, embedded_serve, flow_id, execution_id)
        assert database_child(embedded_serve).pid == database.pid  # hung, not restarted
        flows = await _json(session, "GET", f"{API}/flows", params={"limit": "100"})
    # A create whose answer was a 503 may still be applied once the server reads it
    # (like any write whose reply was lost); it is never applied twice.
    names = [f["name"] for f in flows["items"] if f["name"].startswith("during-")]
    assert len(names) == len(set(names))
    assert calls >= 2
    assert readyz_503 <= 2.0, readyz_503
    assert back <= 10.0, back
    assert "Traceback" not in embedded_serve.log.read_text()
    assert psutil.Process(database.pid).status() != psutil.STATUS_STOPPED


def _wait_ready(serve: ServeProcess) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{serve.url}/readyz", timeout=5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the database did not come back")


def test_database_that_keeps_dying_stops_serve_with_status_1(
    embedded_serve: ServeProcess,
) -> None:
    """After max_restarts deaths within the window, serve exits 1 for its unit to restart."""
    embedded_serve.env.update(
        {
            "FLOWBOARD_DATABASE__MAX_RESTARTS": "1",
            "FLOWBOARD_DATABASE__RESTART_BACKOFF_SECONDS": "0.1",
        }
    )
    embedded_serve.start()
    process = embedded_serve.process
    assert process is not None
    first = database_child(embedded_serve)
    first.kill()
    second = database_child(embedded_serve, other_than=first.pid)  # restarted by itself
    _wait_ready(embedded_serve)
    # /readyz may still say 200 from before the first death: wait for the restart itself,
    # so that the second kill meets a running database, not one still starting.
    deadline = time.monotonic() + 30
    while "embedded database restarted" not in embedded_serve.log.read_text():
        assert time.monotonic() < deadline, "the database was not restarted"
        time.sleep(0.05)
    second.kill()
    assert process.wait(timeout=60) == 1
    embedded_serve.process = None
    log = embedded_serve.log.read_text()
    assert log.count("embedded database killed by SIGKILL") == 2
    assert "embedded database died 2 times within 120 s; stopping the service" in log
    assert "Traceback" not in log


# Kills per test below; the freeze it guards against (a fork of the threaded serve
# deadlocking before exec) struck about one restart in three on a quiet machine.
ROUNDS = int(os.environ.get("OUTAGE_ROUNDS", "30"))


async def _renders_in_flight(
    session: aiohttp.ClientSession, flow_id: str, executions: list[str]
) -> None:
    """Until some render of the latest run is under way; a new forced run once it ended."""
    async with asyncio.timeout(60):
        while True:
            body = await _json(session, "GET", f"{API}/executions/{executions[-1]}")
            if body["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                forced = {"force": True}
                run = await _json(session, "POST", f"{API}/run/{flow_id}", json=forced)
                executions.append(run["id"])
                continue
            if any(
                t["status"] == "PROCESSING" and t["progress"] > 0 for t in body["tasks"].values()
            ):
                return
            await asyncio.sleep(0.05)


async def _restarted(serve: ServeProcess, times: int) -> None:
    """Until serve has logged `times` restarts of its database."""
    async with asyncio.timeout(30):
        while serve.log.read_text().count("embedded database restarted") < times:
            await asyncio.sleep(0.05)


async def _each_completed_once(
    session: aiohttp.ClientSession, serve: ServeProcess, executions: list[str]
) -> None:
    """Every run COMPLETED, with one asset per node and exactly their files stored."""
    keys = []
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_uri(database_child(serve)))
    try:
        for execution_id in executions:
            url = f"{API}/executions/{execution_id}"
            async with asyncio.timeout(180):
                while (done := await _json(session, "GET", url))["status"] == "PROCESSING":
                    await asyncio.sleep(0.3)
            failed = {
                n: t.get("error") for n, t in done["tasks"].items() if t["status"] != "COMPLETED"
            }
            assert done["status"] == "COMPLETED", failed
            found = client.flowboard.assets.find({"executionId": execution_id})
            assets = [a async for a in found]
            assert sorted(a["nodeId"] for a in assets) == sorted(f"v{i}" for i in range(JOBS))
            unfinished = [
                {k: a.get(k) for k in ("nodeId", "status", "storage", "error", "updatedAt")}
                for a in assets
                if a["status"] != "COMPLETED" or not a.get("storage")
            ]
            assert unfinished == [], (done["tasks"], unfinished)
            keys += [a["storage"]["key"] for a in assets]
    finally:
        await client.close()
    media = Path(serve.env["FLOWBOARD_DATA_DIR"]) / "media"
    assert sorted(str(p.relative_to(media)) for p in media.glob("videos/*/*.mp4")) == sorted(keys)


@pytest.mark.timeout(600)  # ROUNDS restarts: ~100 s on a quiet machine, twice that loaded
@pytest.mark.parametrize("backoff", [None, "0"], ids=["default-backoff", "no-backoff"])
async def test_database_killed_again_and_again_during_renders(
    embedded_serve: ServeProcess, backoff: str | None
) -> None:
    """ROUNDS kills of the database, each while renders run: serve never wedges."""
    if backoff is not None:
        embedded_serve.env["FLOWBOARD_DATABASE__RESTART_BACKOFF_SECONDS"] = backoff
    embedded_serve.env["FLOWBOARD_DATABASE__MAX_RESTARTS"] = str(ROUNDS * 2)
    _start(embedded_serve)
    assert embedded_serve.process is not None
    serve_pid = embedded_serve.process.pid
    async with aiohttp.ClientSession(embedded_serve.url) as session:
        flow_id, first = await _start_run(session)
        executions, killed_pids = [first], [0]
        for done in range(1, ROUNDS + 1):
            await _renders_in_flight(session, flow_id, executions)
            database = database_child(embedded_serve, other_than=killed_pids[-1])
            database.kill()
            killed = time.monotonic()
            killed_pids.append(database.pid)
            await _restarted(embedded_serve, done)  # /readyz may not have seen the death yet
            assert await _first_readyz(session, 200, killed) <= 10.0
        await _each_completed_once(session, embedded_serve, executions)
    assert embedded_serve.process is not None and embedded_serve.process.pid == serve_pid
    log = embedded_serve.log.read_text()
    assert log.count("embedded database killed by SIGKILL") == ROUNDS
    assert [line for line in log.splitlines() if "Traceback" in line] == []
