"""Several real `flowboard serve` processes on one replica-set database: shared streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from tests.servers.app import SseReader
from tests.servers.cluster import Cluster
from tests.servers.nginx import StartNginx

API = "/api/creative-flowboard"
WAIT = 15.0


async def _json(resp: aiohttp.ClientResponse, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _flow(http: aiohttp.ClientSession, base: str) -> str:
    resp = await http.post(f"{base}{API}/flows", json={"name": "Shared"})
    flow_id: str = (await _json(resp, 201))["id"]
    return flow_id


async def _add_node(http: aiohttp.ClientSession, base: str, flow_id: str, node: str) -> int:
    body = {"id": node, "type": "prompt", "data": {"text": node}}
    resp = await http.post(f"{base}{API}/flows/{flow_id}/nodes", json=body)
    revision: int = (await _json(resp, 201))["revision"]
    return revision


@asynccontextmanager
async def _stream(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Reader]:
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        yield Reader(resp)


class Reader(SseReader):
    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(super().next(), WAIT)

    async def patch(self) -> dict[str, Any]:
        """The next CANVAS_PATCH (the flow's creation may still arrive as a SYNC_CANVAS:
        its event is stored just after the answer)."""
        return await self.until(lambda f: f["event"] != "SYNC_CANVAS")


async def test_a_subscriber_on_b_sees_edits_and_a_run_made_through_a(cluster: Cluster) -> None:
    a, b = cluster.start(2)
    async with aiohttp.ClientSession() as http:
        flow_id = await _flow(http, a.url)
        async with (
            _stream(http, f"{b.url}{API}/subscribe/{flow_id}") as on_b,
            _stream(http, f"{a.url}{API}/subscribe/{flow_id}") as on_a,
        ):
            assert (await on_b.next())["event"] == "SYNC_CANVAS"
            assert (await on_a.next())["event"] == "SYNC_CANVAS"
            revision = await _add_node(http, a.url, flow_id, "p")
            seen_b, seen_a = await on_b.patch(), await on_a.patch()
            assert seen_b["event"] == "CANVAS_PATCH" and seen_b["data"]["revision"] == revision
            assert seen_b["id"] == seen_a["id"]  # one numbering, whichever server sends it

            data = {"prompt": "waves", "durationSeconds": 2, "resolution": "480p"}
            video = {"id": "vid", "type": "video_gen", "data": data}
            await _json(await http.post(f"{a.url}{API}/flows/{flow_id}/nodes", json=video), 201)
            run = {"flowId": flow_id, "nodeId": "vid"}
            started = await _json(await http.post(f"{a.url}{API}/run-node", json=run), 202)
            updates: list[dict[str, Any]] = []
            while not updates or updates[-1]["status"] not in ("COMPLETED", "FAILED"):
                frame = await on_b.next()
                if frame["event"] == "EXECUTION_UPDATE":
                    updates.append(frame["data"])
            assert {u["id"] for u in updates} == {started["id"]}
            tasks = [u["tasks"]["vid"] for u in updates]
            assert tasks[-1]["status"] == "COMPLETED", tasks[-1]
            progress = [t["progress"] for t in tasks if t["status"] == "PROCESSING"]
            assert len(set(progress)) >= 2 and progress == sorted(progress)

            resp = await http.delete(f"{a.url}{API}/flows/{flow_id}")
            assert resp.status == 204, await resp.text()
            ended = await on_b.until(lambda f: f["event"] == "FLOW_DELETED")
            assert ended["data"] == {"id": flow_id}


async def test_a_ticket_from_a_opens_the_stream_on_b_once(cluster: Cluster) -> None:
    cluster.extra_env["FLOWBOARD_AUTH__ENABLED"] = "true"
    token = cluster.flowboard("token", "create", "--org", "default", "--name", "t").strip()
    a, b = cluster.start(2)
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=auth) as http, aiohttp.ClientSession() as bare:
        flow_id = await _flow(http, a.url)
        answer = await _json(await http.post(f"{a.url}{API}/subscribe/{flow_id}/ticket"), 200)
        url = f"{API}/subscribe/{flow_id}?ticket={answer['ticket']}"
        async with _stream(bare, f"{b.url}{url}") as on_b:
            assert (await on_b.next())["data"]["id"] == flow_id
        for server in (a, b):  # used up, on every server
            async with bare.get(f"{server.url}{url}") as again:
                assert again.status == 401


async def test_a_reconnect_to_another_server_replays_exactly_what_was_missed(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.start(3)
    async with aiohttp.ClientSession() as http:
        flow_id = await _flow(http, a.url)
        path = f"{API}/subscribe/{flow_id}"
        async with _stream(http, f"{c.url}{path}") as watcher:
            await watcher.next()
            async with _stream(http, f"{a.url}{path}") as first:
                await first.next()
                await _add_node(http, b.url, flow_id, "n1")
                last = await first.patch()
                assert (await watcher.patch())["id"] == last["id"]
            missed = [
                await _add_node(http, s.url, flow_id, f"m{i}") for i, s in enumerate((a, b, c))
            ]
            expected = [await watcher.next() for _ in missed]
            async with _stream(http, f"{b.url}{path}", {"Last-Event-ID": last["id"]}) as again:
                replayed = [await again.next() for _ in missed]
                await _add_node(http, a.url, flow_id, "after")
                after = await again.next()
    assert [f["data"]["revision"] for f in expected] == missed
    assert [f["id"] for f in replayed] == [f["id"] for f in expected]
    assert [f["event"] for f in replayed] == ["CANVAS_PATCH"] * 3
    assert after["event"] == "CANVAS_PATCH" and after["data"]["revision"] == missed[-1] + 1


async def test_two_servers_behind_nginx_stream_every_edit(
    cluster: Cluster, nginx: StartNginx
) -> None:
    servers = cluster.start(2)
    proxy = nginx([s.port for s in servers])
    base = proxy.url
    async with aiohttp.ClientSession() as http:
        flow_id = await _flow(http, base)
        async with _stream(http, f"{base}{API}/subscribe/{flow_id}") as reader:
            assert (await reader.next())["event"] == "SYNC_CANVAS"
            for i in range(6):  # round robin: edits land on both servers
                revision = await _add_node(http, base, flow_id, f"n{i}")
                # Each arrives before the next edit is made: nothing buffered on the way.
                frame = await reader.patch()
                assert frame["event"] == "CANVAS_PATCH" and frame["data"]["revision"] == revision
    # Both servers took edits (nginx's log names the upstream of each request).
    served = proxy.upstreams(f"/flows/{flow_id}/nodes")
    assert {f"127.0.0.1:{s.port}" for s in servers} == set(served), served
