"""`flowboard gc` removes exactly the planted garbage; usage matches the stored bytes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import FormData
from PIL import Image
from pymongo import MongoClient

from flowboard.config import Settings
from flowboard.ids import utcnow
from flowboard.keys import SETTINGS
from tests.servers.app import AppClient
from tests.servers.waiting import API

HOUR = 3600


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40 + seed, 30), (seed * 40 % 255, 90, 200)).save(out, "PNG")
    return out.getvalue()


async def _upload(client: AppClient, seed: int) -> dict[str, Any]:
    form = FormData()
    form.add_field("file", _png(seed), filename="in.png", content_type="image/png")
    resp = await client.post(f"{API}/assets", data=form)
    assert resp.status == 201, await resp.text()
    asset: dict[str, Any] = await resp.json()
    return asset


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _plant_file(root: Path, key: str, age: float) -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(1000))
    _age(path, age)
    return path


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update(
        FLOWBOARD_DATA_DIR=settings.data_dir,
        FLOWBOARD_DATABASE__URI=settings.database.uri,
        FLOWBOARD_DATABASE__NAME=settings.database.name,
        **extra,
    )
    return env


def _flowboard(env: dict[str, str], *args: str) -> str:
    argv = [sys.executable, "-m", "flowboard", *args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _gc(env: dict[str, str], *args: str) -> set[str]:
    return set(_flowboard(env, *args).splitlines())


def _take(flow_id: str, key: str, days_ago: int) -> dict[str, Any]:
    created = utcnow() - timedelta(days=days_ago)
    storage = {"backend": "local", "key": key, "contentType": "image/png", "size": 1000}
    storage |= {"sha256": "0" * 64}
    return {
        "_id": f"asset_take{days_ago}",
        "orgId": "default",
        "flowId": flow_id,
        "nodeId": "gen",
        "type": "image",
        "workflow": "text-to-image",
        "status": "COMPLETED",
        "storage": storage,
        "createdAt": created,
        "updatedAt": created,
    }


async def test_gc_lists_then_removes_exactly_the_planted_garbage(
    client: AppClient, client_as: Callable[..., Any]
) -> None:
    settings: Settings = client.app[SETTINGS]
    media = settings.data_path / "media"
    uploads = [await _upload(client, 1), await _upload(await client_as("org-b"), 2)]
    nodes = [{"id": f"p{i}", "type": "prompt", "data": {"text": str(i)}} for i in range(60)]
    flow = await (await client.post(f"{API}/flows", json={"name": "big", "nodes": nodes})).json()
    for path in media.rglob("*"):
        if path.is_file():
            _age(path, 2 * HOUR)  # referenced files are kept for being named, not for age
    referenced = _files(media)
    assert len(referenced) == 2
    orphan = _plant_file(media, "default/orphans/lost.png", 2 * HOUR)
    _plant_file(media, "default/orphans/young.png", 10)  # a job's file not yet named
    _plant_file(media, "default/orphans/.~x.part", 2 * HOUR)  # a write in progress

    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.database.uri)
    db = mongo[settings.database.name]
    try:
        named = {p["_id"] for p in db.flow_parts.find({"flowId": flow["id"]})}
        assert len(named) == 2  # 60 nodes: parts of 50
        old = utcnow() - timedelta(hours=2)
        db.flow_parts.insert_many(
            [
                {"_id": "part_lost", "flowId": flow["id"], "createdAt": old, "items": []},
                {"_id": "part_gone", "flowId": "flow_deleted", "items": []},  # older version
                {"_id": "part_young", "flowId": flow["id"], "createdAt": utcnow(), "items": []},
            ]
        )
        env = _env(settings)
        expected = {
            f"media\tdefault/orphans/lost.png\t{orphan.stat().st_size}",
            "flow_part\tpart_gone\tflow_deleted",
            f"flow_part\tpart_lost\t{flow['id']}",
        }
        assert _gc(env, "gc", "--dry-run") == expected
        assert orphan.exists() and db.flow_parts.count_documents({}) == 5
        assert _gc(env, "gc") == expected
        assert _files(media) == referenced | {
            "default/orphans/young.png",
            "default/orphans/.~x.part",
        }
        assert {p["_id"] for p in db.flow_parts.find({})} == named | {"part_young"}
        stored = await (await client.get(f"{API}/flows/{flow['id']}")).json()
        assert len(stored["nodes"]) == 60
        assert all((media / a["storage"]["key"]).is_file() for a in uploads)
        assert _gc(env, "gc", "--dry-run") == set()

        # Takes: keep the last one of a node; the older ones and their files go.
        keys = [f"default/takes/{n}.png" for n in range(3)]
        for key in keys:
            _plant_file(media, key, 2 * HOUR)
        db.assets.insert_many([_take(flow["id"], key, days) for days, key in enumerate(keys)])
        kept = _env(settings, FLOWBOARD_RETENTION__KEEP_LAST_TAKES="1")
        assert _gc(env, "gc", "--dry-run") == set()  # default: every take, forever
        assert _gc(kept, "gc") == {
            "take\tasset_take1",
            "take\tasset_take2",
            "media\tdefault/takes/1.png\t1000",
            "media\tdefault/takes/2.png\t1000",
        }
        assert {a["_id"] for a in db.assets.find({"nodeId": "gen"})} == {"asset_take0"}
        assert (media / keys[0]).exists() and not (media / keys[1]).exists()
    finally:
        mongo.close()


async def test_usage_matches_the_stored_bytes(
    client: AppClient, client_as: Callable[..., Any]
) -> None:
    other = await client_as("org-b")
    mine = [await _upload(client, n) for n in (1, 2, 3)]
    theirs = [await _upload(other, 4)]
    settings: Settings = client.app[SETTINGS]
    media = settings.data_path / "media"
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.database.uri)
    try:
        run = {"_id": "exe_planted", "orgId": "default", "createdAt": utcnow()}
        mongo[settings.database.name].executions.insert_one(run | {"cost": {"actual": 1.25}})
    finally:
        mongo.close()
    month = f"{utcnow():%Y-%m}"
    for who, assets in ((client, mine), (other, theirs)):
        report = await (await who.get(f"{API}/usage")).json()
        on_disk = sum((media / a["storage"]["key"]).stat().st_size for a in assets)
        (row,) = report["items"]
        assert row["month"] == month and row["files"] == len(assets)
        assert row["storageBytes"] == on_disk
        assert row["cost"] == (1.25 if who is client else 0.0)
        assert row["generations"] == 0  # uploads are not generations
    rows = json.loads(_flowboard(_env(settings), "usage", "--json"))["items"]
    total = sum(p.stat().st_size for p in media.rglob("*") if p.is_file())
    assert sum(r["storageBytes"] for r in rows) == total
    assert {r["orgId"] for r in rows} == {"default", "org-b"}
