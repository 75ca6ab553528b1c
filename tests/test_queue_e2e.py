"""Per-provider concurrency limits through the real app: QUEUED tasks, positions live on SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from flowboard.app import create_app
from tests.fakes.veo import FakeVeo, Route, Script
from tests.servers.app import AppClient, MakeSettings, SseReader
from tests.servers.waiting import API, wait_execution
from tests.test_reuse_e2e import VIDEO, _flow

Factory = Callable[..., Any]
NODES = [f"v{i}" for i in range(1, 7)]


@pytest.fixture
async def veo() -> AsyncIterator[FakeVeo]:
    async with FakeVeo() as server:
        server.default_script = Script(seconds_until_done=0.3)
        yield server


@pytest.fixture
async def app(aiohttp_client: Factory, make_settings: MakeSettings, veo: FakeVeo) -> AppClient:
    veo_settings = {
        "mode": "gemini",
        "api_key": veo.api_key,
        "base_url": veo.base_url,
        "poll_initial_seconds": 0.05,
        "poll_max_seconds": 0.1,
    }
    settings = make_settings(
        providers={"veo": veo_settings},
        queue={"limits": {"veo": 2}},
        execution={"max_concurrent_nodes": 10},
        ratelimit={"enabled": False},
        server={"shutdown_grace_seconds": 0.1},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


def _most_at_once(veo: FakeVeo) -> int:
    """The most Veo operations in flight at once: from each start to its last request."""
    starts = [r.at for r in veo.requests if r.route is Route.START]
    ends = []
    for start in veo.starts:
        op_id = start.operation.rsplit("/", 1)[1]
        ends.append(max(r.at for r in veo.requests if op_id in r.path))
    events = sorted([(at, 1) for at in starts] + [(at, -1) for at in ends])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


async def _follow(reader: SseReader) -> list[dict[str, Any]]:
    """Every EXECUTION_UPDATE of the run, until it is COMPLETED."""
    seen: list[dict[str, Any]] = []
    while True:
        frame = await reader.next()
        if frame["event"] != "EXECUTION_UPDATE":
            continue
        seen.append(frame["data"])
        if frame["data"]["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return seen


async def test_queued_tasks_show_positions_live_and_start_in_order(
    app: AppClient, veo: FakeVeo, sse: Callable[[Any], SseReader]
) -> None:
    nodes = [{"id": n, "type": "video_gen", "data": {**VIDEO, "prompt": n}} for n in NODES]
    flow_id = await _flow(app, nodes, [])
    async with app.get(f"{API}/subscribe/{flow_id}") as stream:
        reader = sse(stream)
        assert (await reader.next())["event"] == "SYNC_CANVAS"
        resp = await app.post(f"{API}/run/{flow_id}")
        assert resp.status == 202, await resp.text()
        updates = await _follow(reader)
    assert updates[-1]["status"] == "COMPLETED", updates[-1]

    positions: dict[str, list[int]] = {n: [] for n in NODES}
    started: list[str] = []
    for execution in updates:
        for node_id, task in execution["tasks"].items():
            place = task["queuePosition"] if task["status"] == "QUEUED" else None
            if place is not None and positions[node_id][-1:] != [place]:
                positions[node_id].append(place)
            if task["status"] == "PROCESSING" and node_id not in started:
                started.append(node_id)
                assert task["queuePosition"] is None
    assert _most_at_once(veo) == 2  # the limit
    waited = {n: p for n, p in positions.items() if p}
    # Four waited, first placed 1..4, and each place only went down, one step at a time.
    assert sorted(p[0] for p in waited.values()) == [1, 2, 3, 4], positions
    for seen in waited.values():
        assert seen == list(range(seen[0], 0, -1)), positions
    # They started in the order of their places, after the two that went straight in.
    by_place = sorted(waited, key=lambda n: waited[n][0])
    assert started[2:] == by_place, (started, positions)
    assert [start.body["instances"][0]["prompt"] for start in veo.starts] == started
    # The ETA is known once a run of the provider ended.
    etas = [
        t["etaSeconds"]
        for e in updates
        for t in e["tasks"].values()
        if t["status"] == "QUEUED" and t["etaSeconds"] is not None
    ]
    assert etas and all(eta > 0 for eta in etas)


async def test_run_node_goes_before_whole_flow_runs(app: AppClient, veo: FakeVeo) -> None:
    nodes = [{"id": n, "type": "video_gen", "data": {**VIDEO, "prompt": n}} for n in NODES]
    flow_id = await _flow(app, [*nodes, {"id": "x", "type": "video_gen", "data": VIDEO}], [])
    body = {"targets": NODES}
    flow_run = await (await app.post(f"{API}/run/{flow_id}", json=body)).json()
    single = await app.post(f"{API}/run-node", json={"flowId": flow_id, "nodeId": "x"})
    assert single.status == 202
    await wait_execution(app, flow_run["id"])
    prompts = [start.body["instances"][0]["prompt"] for start in veo.starts]
    # Two of the flow's nodes held the slots; the run-node took the next one.
    assert prompts.index(VIDEO["prompt"]) == 2, prompts


async def test_a_queued_task_cancelled_leaves_the_queue(app: AppClient, veo: FakeVeo) -> None:
    nodes = [{"id": n, "type": "video_gen", "data": {**VIDEO, "prompt": n}} for n in NODES[:3]]
    flow_id = await _flow(app, nodes, [])
    execution = await (await app.post(f"{API}/run/{flow_id}")).json()
    async with asyncio.timeout(30):
        while True:
            current = await (await app.get(f"{API}/executions/{execution['id']}")).json()
            # Waiting for a slot (every task of a limited provider starts QUEUED).
            queued = [n for n, t in current["tasks"].items() if t["queuePosition"] is not None]
            if queued:
                break
            await asyncio.sleep(0.02)
    cancel = {"nodeId": queued[0]}
    resp = await app.post(f"{API}/executions/{execution['id']}/cancel", json=cancel)
    assert resp.status == 200, await resp.text()
    done = await wait_execution(app, execution["id"])
    statuses = {n: t["status"] for n, t in done["tasks"].items()}
    assert statuses.pop(queued[0]) == "CANCELLED"
    assert set(statuses.values()) == {"COMPLETED"}
    assert len(veo.starts) == 2  # the cancelled one never reached Veo
    # Its place was given back: a later run gets both slots.
    again = await (await app.post(f"{API}/run/{flow_id}", json={"force": True})).json()
    assert (await wait_execution(app, again["id"]))["status"] == "COMPLETED"
