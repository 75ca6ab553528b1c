"""A run against real S3 (moto_server) and real Firestore (Google's emulator); bus retries."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import aioboto3
import pytest
from google.cloud.firestore import AsyncClient

from flowboard.app import create_app
from flowboard.events.types import AssetUpdated
from flowboard.keys import BUS, MIRROR
from flowboard.mirror.firestore import close_client
from tests.servers.app import AppClient, MakeSettings
from tests.servers.firestore import FirestoreEmulator
from tests.servers.waiting import API, wait_execution

VIDEO = {"prompt": "a lighthouse at dusk", "durationSeconds": 1, "resolution": "480p"}


async def run_one(client: AppClient) -> dict[str, Any]:
    flow = await (
        await client.post(
            f"{API}/flows",
            json={"name": "one", "nodes": [{"id": "v", "type": "video_gen", "data": VIDEO}]},
        )
    ).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"})
    assert resp.status == 202
    return await wait_execution(client, (await resp.json())["id"])


async def test_video_lands_in_s3_with_matching_size_and_sha256(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings, moto_server: str
) -> None:
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    storage = {
        "backend": "s3",
        "s3_endpoint_url": moto_server,
        "s3_bucket": bucket,
        "s3_region": "us-east-1",
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test",
    }
    client: AppClient = await aiohttp_client(create_app(make_settings(storage=storage)))
    done = await run_one(client)
    assert done["status"] == "COMPLETED"
    asset = await (await client.get(f"{API}/assets/{done['tasks']['v']['outputAssetId']}")).json()
    session = aioboto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    async with session.client("s3", endpoint_url=moto_server) as s3:
        obj = await s3.get_object(Bucket=bucket, Key=asset["storage"]["key"])
        body = await obj["Body"].read()
    assert len(body) == asset["storage"]["size"] > 0
    assert hashlib.sha256(body).hexdigest() == asset["storage"]["sha256"]
    assert obj["ContentType"] == "video/mp4"
    assert "X-Amz-Signature" in asset["url"]  # private bucket: a presigned URL


def _firestore(emulator: FirestoreEmulator, collection: str) -> dict[str, Any]:
    return {
        "enabled": True,
        "project": "flowboard-test",
        "collection": collection,
        "emulator_host": emulator.host,
    }


async def test_execution_state_is_mirrored_to_firestore(
    aiohttp_client: Callable[..., Any],
    make_settings: MakeSettings,
    firestore_emulator: FirestoreEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collection = f"exec_{uuid.uuid4().hex[:10]}"
    settings = make_settings(firestore=_firestore(firestore_emulator, collection))
    client: AppClient = await aiohttp_client(create_app(settings))
    done = await run_one(client)
    mirror = client.app[MIRROR]
    assert mirror is not None and await mirror.flush(10.0)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    reader = AsyncClient(project="flowboard-test")
    try:
        snapshot = await reader.collection(collection).document(done["id"]).get()
    finally:
        await close_client(reader)
    assert snapshot.to_dict() == done


async def test_run_completes_while_firestore_is_down(
    aiohttp_client: Callable[..., Any],
    make_settings: MakeSettings,
    firestore_emulator: FirestoreEmulator,
) -> None:
    settings = make_settings(firestore=_firestore(firestore_emulator, "down"))
    firestore_emulator.stop()
    client: AppClient = await aiohttp_client(create_app(settings))
    done = await run_one(client)
    assert done["status"] == "COMPLETED"
    mirror = client.app[MIRROR]
    assert mirror is not None and not await mirror.flush(0.2)


async def test_flaky_listener_is_retried_and_the_job_completes(client: AppClient) -> None:
    calls: list[str] = []

    async def flaky(event: AssetUpdated) -> None:
        if event.status == "COMPLETED":
            calls.append(event.asset_id)
            if len(calls) <= 2:
                raise ConnectionError("listener backend hiccup")

    client.app[BUS].listen("asset.updated", flaky)
    done = await run_one(client)
    assert done["status"] == "COMPLETED"
    assert len(calls) == 3 and len(set(calls)) == 1
    flow = await (await client.get(f"{API}/flows/{done['flowId']}")).json()
    assert [n["type"] for n in flow["nodes"]] == ["video_gen", "generated_asset"]


async def test_listener_that_always_fails_ends_the_task_failed(client: AppClient) -> None:
    async def broken(event: AssetUpdated) -> None:
        raise RuntimeError("cannot index this asset")

    client.app[BUS].listen("asset.updated", broken)
    done = await run_one(client)
    task = done["tasks"]["v"]
    assert task["status"] == "FAILED" and task["error"]["code"] == "handler_failed"
    assert "cannot index this asset" in task["error"]["message"]
    assert "3 attempts" in task["error"]["message"]
    flow = await (await client.get(f"{API}/flows/{done['flowId']}")).json()
    assert [n["type"] for n in flow["nodes"]] == ["video_gen"]
