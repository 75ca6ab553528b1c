"""Pay once: a re-run of an unchanged flow, the dry-run estimate, and a budget race.

Run: .venv/bin/python bench/pay_once.py --rounds 5

Starts the real app in this process (embedded database, the offline local providers,
temp data dir, a price table of 1 unit per image and 0.5 per second of video) and:

1. runs prompt → image_gen → video_gen (1 s, 480p) `--rounds` times with a new prompt
   (everything regenerates) and `--rounds` times unchanged (everything reused): time
   from POST run/{flowId} to the execution's COMPLETED, and the assets made;
2. edits the video node, asks `dryRun` and runs: the estimate against the actual cost;
3. sets a day budget 5 units above what the runs above spent and fires 20 concurrent
   run-node of the image node (1 unit each): how many started (made an asset).

Targets (issue 17): an unchanged re-run makes no asset (no provider call); the dry-run
estimate equals the run's actual cost; at most 5 of the 20 start. Prints PASS/FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flowboard.app import create_app  # noqa: E402
from flowboard.config import Settings  # noqa: E402
from flowboard.keys import DATABASE, ENGINE  # noqa: E402

API = "/api/creative-flowboard"
Client = TestClient[Any, Any]
VIDEO = {"prompt": "slow zoom", "durationSeconds": 1, "resolution": "480p"}


async def _done(client: Client, execution_id: str) -> dict[str, Any]:
    async with asyncio.timeout(300):
        while True:
            body: dict[str, Any] = await (
                await client.get(f"{API}/executions/{execution_id}")
            ).json()
            if body["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return body
            await asyncio.sleep(0.02)


async def _assets(client: Client) -> int:
    app = client.app
    assert app is not None
    found: int = await app[DATABASE].assets.count_documents({"workflow": {"$ne": "upload"}})
    return found


async def _timed_run(client: Client, flow_id: str, **body: Any) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    resp = await client.post(f"{API}/run/{flow_id}", json=body)
    done = await _done(client, (await resp.json())["id"])
    return time.perf_counter() - began, done


async def _rounds(
    client: Client, flow_id: str, rounds: int
) -> tuple[list[float], list[float], int]:
    fresh, reused, made = [], [], 0
    for index in range(rounds):
        edit = {"data": {"text": f"a lighthouse, take {index}"}}
        await client.patch(f"{API}/flows/{flow_id}/nodes/p", json=edit)
        seconds, done = await _timed_run(client, flow_id)
        assert done["status"] == "COMPLETED", done
        fresh.append(seconds)
        before = await _assets(client)
        seconds, done = await _timed_run(client, flow_id)
        assert all(t["cached"] for t in done["tasks"].values()), done
        reused.append(seconds)
        made += await _assets(client) - before
    return fresh, reused, made


async def _estimate_vs_actual(client: Client, flow_id: str) -> tuple[float, float]:
    video = {**VIDEO, "prompt": "fast pan"}
    await client.patch(f"{API}/flows/{flow_id}/nodes/v", json={"data": video})
    plan = await (await client.post(f"{API}/run/{flow_id}", json={"dryRun": True})).json()
    _, done = await _timed_run(client, flow_id)
    return float(plan["estimatedCost"]), float(done["cost"]["actual"])


async def _race(client: Client, flow_id: str) -> tuple[int, int]:
    app = client.app
    assert app is not None
    budgets = app[ENGINE].budgets
    assert budgets is not None
    spent = (await budgets.view("default")).day.spent  # the runs above spent already
    await budgets.set_limits("default", spent + 5.0, None)
    before = await _assets(client)
    body = {"flowId": flow_id, "nodeId": "g"}

    async def once() -> int:
        resp = await client.post(f"{API}/run-node", json=body)
        if resp.status != 202:
            return resp.status
        done = await _done(client, (await resp.json())["id"])
        return 200 if done["status"] == "COMPLETED" else 409

    outcomes = await asyncio.gather(*(once() for _ in range(20)))
    return await _assets(client) - before, outcomes.count(200)


async def measure(data_dir: Path, rounds: int) -> dict[str, Any]:
    settings = Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "auth": {"enabled": False},
            "logging": {"format": "text", "level": "WARNING"},
            "providers": {"local": {"fps": 4}},
            "ratelimit": {"enabled": False},
            "costs": {"prices": {"local": {"per_image": 1.0, "per_second": 0.5}}},
        }
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        nodes = [
            {"id": "p", "type": "prompt", "data": {"text": "a lighthouse"}},
            {"id": "g", "type": "image_gen", "data": {"aspectRatio": "16:9"}},
            {"id": "v", "type": "video_gen", "data": VIDEO},
        ]
        edges = [
            {"id": "e1", "source": "p", "target": "g"},
            {"id": "e2", "source": "g", "target": "v"},
        ]
        body = {"name": "bench", "nodes": nodes, "edges": edges}
        flow = await (await client.post(f"{API}/flows", json=body)).json()
        fresh, reused, made = await _rounds(client, flow["id"], rounds)
        estimate, actual = await _estimate_vs_actual(client, flow["id"])
        started, completed = await _race(client, flow["id"])
    return {
        "fresh": fresh,
        "reused": reused,
        "made": made,
        "estimate": estimate,
        "actual": actual,
        "started": started,
        "completed": completed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fb-pay-") as tmp:
        found = asyncio.run(measure(Path(tmp), args.rounds))
    fresh, reused = statistics.median(found["fresh"]), statistics.median(found["reused"])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    print(f"commit {commit}  load {os.getloadavg()[0]:.2f}  rounds {args.rounds}")
    print(f"run/{{flowId}} regenerating 2 nodes: median {fresh * 1000:.0f} ms")
    print(f"run/{{flowId}} reusing both:        median {reused * 1000:.0f} ms")
    print(f"ratio {fresh / reused:.1f}x; assets made by the unchanged re-runs: {found['made']}")
    print(f"dryRun estimate {found['estimate']:g}, actual cost of the run {found['actual']:g}")
    print(f"budget 5, 20 concurrent run-node at 1 each: {found['started']} started")
    ok = found["made"] == 0 and found["estimate"] == found["actual"] and found["started"] <= 5
    print("PASS" if ok else "FAIL", "(targets: 0 assets re-made, estimate = actual, <= 5 start)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
