"""Webhooks over real sockets: outbound through failures and a restart; inbound reports."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from flowboard.app import create_app
from flowboard.config import Settings
from flowboard.events.types import ExecutionUpdated
from flowboard.keys import BUS, PROVIDERS
from flowboard.providers.base import ProgressCallback, VideoOutput, VideoRequest
from tests.servers.app import AppClient, MakeSettings
from tests.servers.http_recorder import HttpRecorder, MakeRecorder, Recorded
from tests.servers.waiting import API, wait_execution

VIDEO = {"prompt": "a lighthouse at dusk", "durationSeconds": 1, "resolution": "480p"}
PROVIDER_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_dGhpcyBpcyBub3QgdGhlIHByb3ZpZGVyJ3Mga2V5"
MakeClient = Callable[..., Any]


def webhook_settings(make_settings: MakeSettings) -> Settings:
    return make_settings(
        network={"allow": ["127.0.0.1"]},
        webhooks={
            "timeout_seconds": 5.0,
            "retry_schedule_seconds": [0.2, 0.4, 0.8],
            "poll_seconds": 0.1,
            "max_attempts": 30,
            "inbound": {"secrets": {"acme": PROVIDER_SECRET}},
        },
        server={"shutdown_grace_seconds": 0.5},
    )


async def subscribe(client: AppClient, url: str, **fields: Any) -> dict[str, Any]:
    resp = await client.post(f"{API}/webhooks", json={"url": url, **fields})
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def run_flow(client: AppClient, node_ids: list[str], video: dict[str, Any]) -> str:
    nodes = [{"id": n, "type": "video_gen", "data": video} for n in node_ids]
    flow = await (await client.post(f"{API}/flows", json={"name": "w", "nodes": nodes})).json()
    resp = await client.post(f"{API}/run/{flow['id']}")
    assert resp.status == 202, await resp.text()
    execution_id: str = (await resp.json())["id"]
    return execution_id


async def deliveries(client: AppClient, webhook_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"{API}/webhooks/{webhook_id}/deliveries")
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def wait_deliveries(
    client: AppClient,
    webhook_id: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 30,
) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while not done(items := await deliveries(client, webhook_id)):
            await asyncio.sleep(0.05)
    return items


def verified(secret: str, request: Recorded) -> dict[str, Any]:
    """The payload, once the standardwebhooks package accepted its signature."""
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


@dataclass
class FlakyReceiver:
    """500 for the first `failures` requests, then 503 until stopped; 204 once `up`."""

    failures: int = 3
    up: bool = False
    failed: asyncio.Event = field(default_factory=asyncio.Event)
    accepted: list[Recorded] = field(default_factory=list)

    async def __call__(self, recorder: HttpRecorder, request: Recorded) -> web.StreamResponse:
        if self.up:
            self.accepted.append(request)
            return web.Response(status=204)
        if len(recorder.requests) >= self.failures:
            self.failed.set()
        status = 500 if len(recorder.requests) <= self.failures else 503
        return web.Response(status=status, text="receiver is having a bad day")


async def test_every_event_of_a_run_arrives_through_failures_and_a_restart(
    aiohttp_client: MakeClient, make_settings: MakeSettings, http_recorder: MakeRecorder
) -> None:
    script = FlakyReceiver()
    receiver = await http_recorder(respond=script)
    settings = webhook_settings(make_settings)
    first: AppClient = await aiohttp_client(create_app(settings))
    hook = await subscribe(first, receiver.url("/hooks"))
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    execution_id = await run_flow(first, ["a", "b"], VIDEO)
    done = await wait_execution(first, execution_id)
    assert done["status"] == "COMPLETED"
    queued = await wait_deliveries(first, hook["id"], lambda items: len(items) == 3)
    await asyncio.wait_for(script.failed.wait(), 30)
    await receiver.stop()  # down: connections refused from here on
    await first.close()  # Flowboard stops with the three deliveries still pending

    restarted_at = datetime.now(UTC)
    second: AppClient = await aiohttp_client(create_app(settings))
    await wait_deliveries(  # the new process retries, from the outbox, into a closed port
        second,
        hook["id"],
        lambda items: any(
            a["error"] and datetime.fromisoformat(a["at"]) > restarted_at
            for d in items
            for a in d["attempts"]
        ),
    )
    script.up = True
    await receiver.start()  # the same port again
    final = await wait_deliveries(
        second, hook["id"], lambda items: all(d["status"] == "DELIVERED" for d in items)
    )

    payloads = [verified(hook["secret"], r) for r in script.accepted]
    events = sorted((p["type"], p["data"].get("assetId") or p["data"]["id"]) for p in payloads)
    assets = sorted(t["outputAssetId"] for t in done["tasks"].values())
    assert events == sorted(
        [("asset.completed", a) for a in assets] + [("execution.completed", execution_id)]
    )
    assert len({r.headers["webhook-id"] for r in script.accepted}) == 3
    execution_payload = next(p for p in payloads if p["type"] == "execution.completed")
    assert execution_payload["data"]["status"] == "COMPLETED"

    assert {d["id"] for d in final} == {d["id"] for d in queued}
    attempts = [a for d in final for a in d["attempts"]]
    assert sum(a["statusCode"] == 500 for a in attempts) == 3
    assert any(a["error"] and "connect" in a["error"].lower() for a in attempts)
    for delivery in final:
        assert delivery["attempts"][-1]["statusCode"] == 204
        assert delivery["outcome"] == "delivered (HTTP 204)" and delivery["nextAttemptAt"] is None
        assert "body" not in delivery


async def test_410_gone_disables_the_subscription(
    aiohttp_client: MakeClient, make_settings: MakeSettings, http_recorder: MakeRecorder
) -> None:
    async def gone(recorder: HttpRecorder, request: Recorded) -> web.StreamResponse:
        return web.Response(status=410)

    receiver = await http_recorder(respond=gone)
    client: AppClient = await aiohttp_client(create_app(webhook_settings(make_settings)))
    hook = await subscribe(client, receiver.url("/gone"))
    await wait_execution(client, await run_flow(client, ["a"], VIDEO))
    items = await wait_deliveries(
        client,
        hook["id"],
        lambda items: bool(items) and all(d["status"] != "PENDING" for d in items),
    )
    state = await (await client.get(f"{API}/webhooks/{hook['id']}")).json()
    assert state["enabled"] is False and "410" in state["disabledReason"]
    assert "secret" not in state
    failed = [d for d in items if d["status"] == "FAILED"]
    assert len(failed) == 1 and failed[0]["attempts"][0]["statusCode"] == 410
    assert "subscription disabled" in failed[0]["outcome"]
    assert all(d["status"] == "CANCELLED" for d in items if d is not failed[0])
    seen = len(receiver.requests)

    await wait_execution(client, await run_flow(client, ["b"], VIDEO))
    await client.app[BUS].drain(5.0)
    assert len(await deliveries(client, hook["id"])) == len(items)
    await asyncio.sleep(0.3)  # a few worker polls
    assert len(receiver.requests) == seen


async def test_subscriptions_filter_by_event_and_flow(
    aiohttp_client: MakeClient,
    make_settings: MakeSettings,
    http_recorder: MakeRecorder,
) -> None:
    receiver = await http_recorder()
    client: AppClient = await aiohttp_client(create_app(webhook_settings(make_settings)))
    flow = await (
        await client.post(
            f"{API}/flows",
            json={
                "name": "f",
                "nodes": [
                    {"id": "v", "type": "video_gen", "data": {**VIDEO, "durationSeconds": 30}}
                ],
            },
        )
    ).json()
    hook = await subscribe(
        client,
        receiver.url("/flow"),
        flowId=flow["id"],
        events=["execution.cancelled"],
        secret=OTHER_SECRET,
    )
    assert hook["secret"] == OTHER_SECRET and hook["flowId"] == flow["id"]
    await wait_execution(client, await run_flow(client, ["x"], VIDEO))  # another flow
    run = await (await client.post(f"{API}/run/{flow['id']}")).json()
    cancel = await client.post(f"{API}/executions/{run['id']}/cancel")
    assert cancel.status == 200
    await wait_execution(client, run["id"])
    await wait_deliveries(
        client, hook["id"], lambda items: [d["status"] for d in items] == ["DELIVERED"]
    )
    assert len(receiver.requests) == 1
    payload = verified(OTHER_SECRET, receiver.requests[0])
    assert payload["type"] == "execution.cancelled" and payload["data"]["id"] == run["id"]

    # a re-published terminal event is not queued again
    state = await (await client.get(f"{API}/executions/{run['id']}")).json()
    event = ExecutionUpdated(run["id"], flow["id"], state["orgId"], state["status"], state)
    client.app[BUS].publish(event)
    await client.app[BUS].drain(5.0)
    assert len(await deliveries(client, hook["id"])) == 1


async def test_subscription_api(client: AppClient, other_client: AppClient) -> None:
    refused = await client.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:1/x"})
    assert refused.status == 422 and (await refused.json())["error"]["code"] == "unsafe_url"
    bad_secret = await client.post(
        f"{API}/webhooks", json={"url": "https://example.com/h", "secret": "whsec_c2hvcnQ="}
    )
    assert bad_secret.status == 422
    assert "c2hvcnQ" not in await bad_secret.text()  # a secret is never echoed
    missing_flow = await client.post(
        f"{API}/webhooks", json={"url": "https://example.com/h", "flowId": "flow_nope"}
    )
    assert missing_flow.status == 404
    bad_event = await client.post(
        f"{API}/webhooks", json={"url": "https://example.com/h", "events": ["asset.deleted"]}
    )
    assert bad_event.status == 422

    listed = await (await client.get(f"{API}/webhooks")).json()
    assert listed["total"] == 0
    other = await other_client.get(f"{API}/webhooks/wh_nope/deliveries")
    assert other.status == 404


async def test_subscription_lifecycle(
    aiohttp_client: MakeClient,
    make_settings: MakeSettings,
    http_recorder: MakeRecorder,
) -> None:
    receiver = await http_recorder()
    client: AppClient = await aiohttp_client(create_app(webhook_settings(make_settings)))
    hook = await subscribe(client, receiver.url("/h"), events=["asset.completed"])
    assert hook["events"] == ["asset.completed"]
    listed = await (await client.get(f"{API}/webhooks")).json()
    assert [h["id"] for h in listed["items"]] == [hook["id"]]
    assert "secret" not in listed["items"][0]
    deleted = await client.delete(f"{API}/webhooks/{hook['id']}")
    assert deleted.status == 204
    assert (await client.get(f"{API}/webhooks/{hook['id']}")).status == 404
    assert (await client.delete(f"{API}/webhooks/{hook['id']}")).status == 404


# -- inbound --------------------------------------------------------------------------


@dataclass
class ExternalProvider:
    """A push-style service: accepts a job, then reports only through inbound webhooks."""

    name: str = "acme"
    deadline_seconds: float = 600.0

    def validate(self, request: VideoRequest) -> None:
        return None

    async def start(self, request: VideoRequest) -> str:
        return f"op-{request.job_id}"

    async def follow(
        self, operation_id: str, request: VideoRequest, report: ProgressCallback
    ) -> VideoOutput:
        await asyncio.Event().wait()  # the service calls back instead
        raise AssertionError("unreachable")

    async def cancel(self, operation_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


def signed(
    body: dict[str, Any],
    secret: str = PROVIDER_SECRET,
    message_id: str | None = None,
    at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A report signed by the standardwebhooks package, as a provider would send it."""
    raw = json.dumps(body)
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return raw.encode(), {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, raw),
    }


@dataclass
class Provider:
    """Posts reports to the inbound route without any bearer token."""

    client: AppClient
    session: aiohttp.ClientSession

    async def post(self, report: tuple[bytes, dict[str, str]], name: str = "acme") -> Any:
        body, headers = report
        async with self.session.post(
            self.client.make_url(f"/api/webhooks/{name}"), data=body, headers=headers
        ) as resp:
            return resp.status, await resp.json()


async def start_external_run(client: AppClient) -> tuple[str, str]:
    """Run one node on the external provider; return (execution id, asset id)."""
    registry = client.app[PROVIDERS]
    registry.providers["acme"] = ExternalProvider()
    registry.default = "acme"
    execution_id = await run_flow(client, ["v"], VIDEO)
    async with asyncio.timeout(10):
        while True:
            asset_id = (await (await client.get(f"{API}/executions/{execution_id}")).json())[
                "tasks"
            ]["v"]["outputAssetId"]
            asset = await (await client.get(f"{API}/assets/{asset_id}")).json()
            if asset.get("operationId"):  # absent from the JSON until the job stores it
                return execution_id, asset_id
            await asyncio.sleep(0.05)


async def asset_of(client: AppClient, asset_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await (await client.get(f"{API}/assets/{asset_id}")).json()
    return body


async def wait_task(
    client: AppClient, execution_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            execution = await (await client.get(f"{API}/executions/{execution_id}")).json()
            if done(execution["tasks"]["v"]):
                task: dict[str, Any] = execution["tasks"]["v"]
                return task
            await asyncio.sleep(0.05)


async def test_inbound_reports_move_the_asset_and_the_task(
    aiohttp_client: MakeClient, make_settings: MakeSettings
) -> None:
    client: AppClient = await aiohttp_client(create_app(webhook_settings(make_settings)))
    execution_id, asset_id = await start_external_run(client)
    async with aiohttp.ClientSession() as session:
        provider = Provider(client, session)
        progress = signed({"assetId": asset_id, "status": "PROCESSING", "progress": 40})
        assert await provider.post(progress) == (200, {"status": "applied", "detail": ""})
        assert (await asset_of(client, asset_id))["progress"] == 40
        await wait_task(client, execution_id, lambda t: t["progress"] == 40)

        done = {"assetId": asset_id, "status": "COMPLETED", "url": "https://cdn.example/v.mp4"}
        status, _ = await provider.post(signed(done, secret=OTHER_SECRET))
        assert status == 401
        stale = datetime.now(UTC) - timedelta(minutes=5, seconds=30)
        status, body = await provider.post(signed(done, at=stale))
        assert status == 401 and "too old" in body["error"]["message"]
        status, _ = await provider.post(signed(done), name="someone-else")
        assert status == 401
        tampered_body, headers = signed(done)
        status, _ = await provider.post((tampered_body.replace(b"cdn", b"evil"), headers))
        assert status == 401
        # the same webhook-id again, even with another (validly signed) body: ignored
        replay_id = progress[1]["webhook-id"]
        status, body = await provider.post(
            signed(
                {"assetId": asset_id, "status": "PROCESSING", "progress": 70}, message_id=replay_id
            )
        )
        assert (status, body["status"]) == (200, "duplicate")
        assert (await provider.post(progress))[1]["status"] == "duplicate"
        asset = await asset_of(client, asset_id)
        assert (asset["status"], asset["progress"], asset["url"]) == ("PROCESSING", 40, None)

        assert (await provider.post(signed(done)))[1]["status"] == "applied"
    finished = await wait_execution(client, execution_id, timeout=10)
    task = finished["tasks"]["v"]
    assert finished["status"] == "COMPLETED" and task["outputUrl"] == done["url"]
    flow = await (await client.get(f"{API}/flows/{finished['flowId']}")).json()
    assert [n["type"] for n in flow["nodes"]] == ["video_gen", "generated_asset"]


async def test_inbound_failure_fails_the_task_and_unknown_assets_are_refused(
    aiohttp_client: MakeClient, make_settings: MakeSettings
) -> None:
    client: AppClient = await aiohttp_client(create_app(webhook_settings(make_settings)))
    execution_id, asset_id = await start_external_run(client)
    async with aiohttp.ClientSession() as session:
        provider = Provider(client, session)
        status, _ = await provider.post(signed({"assetId": "asset_nope", "status": "FAILED"}))
        assert status == 404
        status, _ = await provider.post(signed({"assetId": asset_id, "status": "COMPLETED"}))
        assert status == 422  # COMPLETED needs the url
        failed = {"assetId": asset_id, "status": "FAILED", "error": "quota exceeded"}
        assert (await provider.post(signed(failed)))[1]["status"] == "applied"
    finished = await wait_execution(client, execution_id, timeout=10)
    error = finished["tasks"]["v"]["error"]
    assert finished["status"] == "FAILED"
    assert error == {"code": "provider_error", "message": "quota exceeded"}
