"""Rate limits per caller on the run endpoints: token buckets, 429 with Retry-After."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from flowboard.api.ratelimit import RateLimiter, bucket_key, retry_after
from flowboard.app import create_app
from flowboard.auth.identity import Method, Principal
from flowboard.canvas.model import DEFAULT_ORG
from flowboard.config import RateLimitSettings
from tests.servers.app import AppClient, MakeClient, MakeSettings
from tests.servers.waiting import API

BURST = 3
# 60 a minute = one a second: a refused caller is told to wait 1 s, and may go on after it.
LIMITS = {"burst": BURST, "run_per_minute": 60}
SECRET = "rate-limit-test-secret-of-32-bytes!!"


@pytest.fixture
async def client(aiohttp_client: Callable[..., Any], make_settings: MakeSettings) -> AppClient:
    """The real app with a small run limit, as a token of the default organisation."""
    result: AppClient = await aiohttp_client(create_app(make_settings(ratelimit=LIMITS)))
    return result


async def _flow(client: AppClient) -> str:
    data = {"prompt": "a cat", "durationSeconds": 2, "resolution": "480p"}
    node = {"id": "v", "type": "video_gen", "data": data}
    resp = await client.post(f"{API}/flows", json={"name": "limited", "nodes": [node]})
    assert resp.status == 201, await resp.text()
    flow_id: str = (await resp.json())["id"]
    return flow_id


async def _run(client: AppClient, flow_id: str, headers: dict[str, str] | None = None) -> int:
    """Run the flow (one idempotency key, so a single execution is ever started)."""
    sent = {"Idempotency-Key": "rate-limit-test", **(headers or {})}
    resp = await client.post(f"{API}/run/{flow_id}", headers=sent)
    return resp.status


async def test_burst_then_429_with_retry_after_then_refilled(client: AppClient) -> None:
    flow_id = await _flow(client)
    key = {"Idempotency-Key": "node-run"}
    assert await _run(client, flow_id) == 202
    run_node = await client.post(
        f"{API}/run-node", json={"flowId": flow_id, "nodeId": "v"}, headers=key
    )
    assert run_node.status == 202
    # A refused retry still spends the caller's allowance: the three run routes share it.
    assert (await client.post(f"{API}/executions/exec_missing/retry")).status == 404
    refused = await client.post(f"{API}/run/{flow_id}", headers={"Idempotency-Key": "x"})
    assert refused.status == 429
    wait = int(refused.headers["Retry-After"])
    body = await refused.json()
    error = body["error"]
    assert wait >= 1 and set(body) == {"error"} and isinstance(error["message"], str)
    assert error["code"] == "rate_limited" and error["details"]["retryAfter"] == wait
    await asyncio.sleep(wait)
    assert await _run(client, flow_id) == 202


async def test_other_tokens_and_other_routes_are_not_limited(
    client: AppClient, client_as: MakeClient, other_client: AppClient
) -> None:
    flow_id = await _flow(client)
    statuses = [await _run(client, flow_id) for _ in range(BURST + 2)]
    assert statuses[:BURST] == [202] * BURST and statuses[BURST:] == [429, 429]
    second = await client_as(DEFAULT_ORG)  # another token of the same organisation
    assert [await _run(second, flow_id) for _ in range(BURST)] == [202] * BURST
    assert await _run(other_client, flow_id) == 404  # charged to org-b's token, not refused
    assert (await client.get(f"{API}/flows/{flow_id}")).status == 200
    assert (await client.get(f"{API}/flows/{flow_id}/executions")).status == 200
    for _ in range(BURST + 1):
        assert (await client.post(f"{API}/flows", json={"name": "edit"})).status == 201


async def test_jwt_callers_are_counted_per_org_and_subject(
    aiohttp_client: MakeClient, make_settings: MakeSettings
) -> None:
    settings = make_settings(ratelimit={"burst": 1}, auth={"jwt_secret": SECRET})
    client = await aiohttp_client(create_app(settings), org=None)

    def bearer(org: str, sub: str) -> dict[str, str]:
        claims = {"sub": sub, "org_id": org, "exp": int(time.time()) + 300}
        return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, 'HS256')}"}

    missing = f"{API}/executions/exec_missing/retry"
    assert (await client.post(missing, headers=bearer("a", "user"))).status == 404
    assert (await client.post(missing, headers=bearer("a", "user"))).status == 429
    assert (await client.post(missing, headers=bearer("b", "user"))).status == 404
    assert (await client.post(missing, headers=bearer("a", "other"))).status == 404


async def test_disabled_or_without_auth_nothing_is_limited(
    aiohttp_client: MakeClient, make_settings: MakeSettings
) -> None:
    for sections in (
        {"ratelimit": {"burst": 1, "enabled": False}},
        {"ratelimit": {"burst": 1}, "auth": {"enabled": False}},  # no token to charge
    ):
        client = await aiohttp_client(create_app(make_settings(**sections)))
        for _ in range(3):
            assert (await client.post(f"{API}/executions/exec_missing/retry")).status == 404
        await client.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(clock: _Clock, max_buckets: int = 100) -> RateLimiter:
    settings = RateLimitSettings(run_per_minute=6, burst=2)  # one token per 10 s
    return RateLimiter(settings, (), max_buckets=max_buckets, clock=clock)


def test_bucket_refills_at_the_configured_rate() -> None:
    clock = _Clock()
    limiter = _limiter(clock)
    assert limiter.take("k") == 0 and limiter.take("k") == 0
    assert limiter.take("k") == pytest.approx(10.0)
    clock.now += 4
    assert limiter.take("k") == pytest.approx(6.0)
    assert retry_after(6.0) == 6 and retry_after(0.01) == 1 and retry_after(5.2) == 6
    clock.now += 6
    assert limiter.take("k") == 0 and limiter.take("k") > 0


def test_buckets_are_bounded_and_idle_ones_forgotten() -> None:
    clock = _Clock()
    limiter = _limiter(clock, max_buckets=3)
    for key in "abcde":
        limiter.take(key)
    assert len(limiter) == 3  # the least recently seen were dropped
    clock.now += 20  # long enough for every bucket to be full again
    limiter.take("z")
    assert len(limiter) == 1


def test_bucket_key_separates_tokens_and_jwt_subjects() -> None:
    keys = {
        bucket_key(Principal("a", "tok_1", Method.TOKEN)),
        bucket_key(Principal("a", "user", Method.JWT)),
        bucket_key(Principal("b", "user", Method.JWT)),
    }
    assert len(keys) == 3
