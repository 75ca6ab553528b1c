"""Budgets through the real app and the real `flowboard budget` command, on the fakes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowboard.app import create_app
from flowboard.canvas.model import DEFAULT_ORG
from tests.fakes.google_image import FakeGoogleImages
from tests.fakes.veo import FakeVeo
from tests.servers.app import AppClient, MakeSettings
from tests.servers.waiting import API, wait_execution
from tests.test_reuse_e2e import IMAGE, VIDEO, _flow

Factory = Callable[..., Any]
PRICES = {"gemini_image": {"per_image": 1.0}, "veo": {"per_second": 3.0}}


@pytest.fixture
def cli(mongo_server: str, mongo_db_name: str, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run `flowboard budget ...` as a process on the test database; its JSON output."""

    def run(*args: str) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
        env.update(
            FLOWBOARD_DATA_DIR=str(tmp_path / "data"),
            FLOWBOARD_DATABASE__URI=mongo_server,
            FLOWBOARD_DATABASE__NAME=mongo_db_name,
            FLOWBOARD_COSTS__UNIT="credits",
        )
        result = subprocess.run(
            [sys.executable, "-m", "flowboard", "budget", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr.decode()
        found: dict[str, Any] = json.loads(result.stdout)
        return found

    return run


@pytest.fixture
async def app(
    aiohttp_client: Factory, make_settings: MakeSettings, images: FakeGoogleImages, veo: FakeVeo
) -> AppClient:
    veo_settings = {
        "mode": "gemini",
        "api_key": veo.api_key,
        "base_url": veo.base_url,
        "poll_initial_seconds": 0.05,
    }
    settings = make_settings(
        providers={
            "veo": veo_settings,
            "gemini_image": {"enabled": True, "base_url": images.base_url},
        },
        costs={"unit": "credits", "prices": PRICES},
        ratelimit={"enabled": False},
        execution={"provider_attempts": 1},
        server={"shutdown_grace_seconds": 0.1},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


async def _budget(client: AppClient) -> dict[str, Any]:
    resp = await client.get(f"{API}/budget")
    assert resp.status == 200, await resp.text()
    found: dict[str, Any] = await resp.json()
    return found


async def test_cli_sets_limits_and_the_api_shows_them(
    app: AppClient, cli: Callable[..., dict[str, Any]]
) -> None:
    printed = cli("set", "--org", DEFAULT_ORG, "--day", "10", "--month", "200")
    assert (printed["day"]["limit"], printed["month"]["limit"]) == (10, 200)
    shown = await _budget(app)
    assert shown["unit"] == "credits"
    assert shown["day"] == {**printed["day"], "remaining": 10, "spent": 0}
    assert shown["month"]["remaining"] == 200
    cli("set", "--org", DEFAULT_ORG, "--month", "none")  # the day limit stays
    shown = await _budget(app)
    assert (shown["day"]["limit"], shown["month"]["limit"]) == (10, None)
    assert cli("show", "--org", "org-b")["day"]["limit"] is None


async def test_a_run_over_the_remaining_budget_is_refused_before_any_call(
    app: AppClient, veo: FakeVeo, cli: Callable[..., dict[str, Any]]
) -> None:
    cli("set", "--org", DEFAULT_ORG, "--day", "10")
    flow_id = await _flow(app, [{"id": "b", "type": "video_gen", "data": VIDEO}], [])
    resp = await app.post(f"{API}/run/{flow_id}")  # 4 s x 3 = 12
    assert resp.status == 402, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "budget_exceeded"
    assert (error["details"]["estimated"], error["details"]["remaining"]) == (12, 10)
    assert error["details"]["unit"] == "credits"
    resp = await app.post(f"{API}/run-node", json={"flowId": flow_id, "nodeId": "b"})
    assert resp.status == 402
    assert veo.starts == []
    dry = await app.post(f"{API}/run/{flow_id}", json={"dryRun": True})
    assert dry.status == 200 and (await dry.json())["estimatedCost"] == 12

    cli("set", "--org", DEFAULT_ORG, "--day", "13")
    resp = await app.post(f"{API}/run/{flow_id}")
    assert resp.status == 202, await resp.text()
    done = await wait_execution(app, (await resp.json())["id"])
    assert done["status"] == "COMPLETED"
    assert (await _budget(app))["day"] | {"key": ""} == {
        "key": "",
        "limit": 13,
        "spent": 12,
        "remaining": 1,
    }


async def test_a_failed_task_releases_its_reservation(
    app: AppClient, veo: FakeVeo, cli: Callable[..., dict[str, Any]]
) -> None:
    cli("set", "--org", DEFAULT_ORG, "--day", "100")
    flow_id = await _flow(app, [{"id": "b", "type": "video_gen", "data": VIDEO}], [])
    veo.fail_next(5, status=400)
    resp = await app.post(f"{API}/run/{flow_id}")
    done = await wait_execution(app, (await resp.json())["id"])
    assert done["status"] == "FAILED"
    assert (await _budget(app))["day"]["spent"] == 0


async def test_concurrent_runs_cannot_overspend(
    app: AppClient, images: FakeGoogleImages, cli: Callable[..., dict[str, Any]]
) -> None:
    cli("set", "--org", DEFAULT_ORG, "--day", "5")
    flow_id = await _flow(app, [{"id": "a", "type": "image_gen", "data": IMAGE}], [])
    body = {"flowId": flow_id, "nodeId": "a"}  # run-node: another take each time, 1 each

    async def run_once() -> str:
        resp = await app.post(f"{API}/run-node", json=body)
        if resp.status == 402:
            return "refused"
        assert resp.status == 202, await resp.text()
        done = await wait_execution(app, (await resp.json())["id"])
        task = done["tasks"]["a"]
        return "completed" if task["status"] == "COMPLETED" else str(task["error"]["code"])

    outcomes = await asyncio.gather(*(run_once() for _ in range(20)))
    started = outcomes.count("completed")
    # Exactly the budget's worth start (every take costs 1, no call fails); never more.
    assert started == 5 and len(images.calls) == started, outcomes
    assert set(outcomes) <= {"completed", "refused", "budget_exceeded"}
    assert (await _budget(app))["day"]["spent"] == started


async def test_requests_racing_with_one_idempotency_key_reserve_once(
    app: AppClient, images: FakeGoogleImages, cli: Callable[..., dict[str, Any]]
) -> None:
    cli("set", "--org", DEFAULT_ORG, "--day", "100")
    flow_id = await _flow(app, [{"id": "a", "type": "image_gen", "data": IMAGE}], [])
    body = {"flowId": flow_id, "nodeId": "a"}
    headers = {"Idempotency-Key": "one-click"}

    async def run_once() -> str:
        resp = await app.post(f"{API}/run-node", json=body, headers=headers)
        assert resp.status == 202, await resp.text()
        return str((await resp.json())["id"])

    # Each request reserves while preparing, before the insert that only one can win.
    ids = set(await asyncio.gather(*(run_once() for _ in range(20))))
    assert len(ids) == 1
    done = await wait_execution(app, ids.pop())
    assert done["tasks"]["a"]["status"] == "COMPLETED"
    assert len(images.calls) == 1
    # The losers gave their reservations back: one take's worth is spent, not 20.
    assert (await _budget(app))["day"]["spent"] == 1
