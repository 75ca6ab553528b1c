"""A real `flowboard serve` whose data directory is a small tmpfs, filled by uploads and runs.

Uploads and runs answer 507 while free space is under the floor, before the embedded
database's own writes fail; a job whose output no longer fits ends `storage_full`;
freeing space lets new runs complete without a restart; and no asset ever references a
missing or partial file.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from pymongo import AsyncMongoClient

from tests.servers._process import free_port
from tests.servers.serve_process import ServeProcess, database_child, database_uri

API = "/api/creative-flowboard"
MIB = 1 << 20
DISK_MIB = 128
FLOOR_MIB = 48  # uploads and runs refused below; running jobs may go down to half of it


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 128 MiB tmpfs mounted for this test (root only; skipped, saying why, elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def serve_on_small_disk(small_disk: Path, tmp_path: Path) -> Iterator[ServeProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update(
        {
            "FLOWBOARD_DATA_DIR": str(small_disk / "data"),
            "FLOWBOARD_AUTH__ENABLED": "false",
            "FLOWBOARD_STORAGE__MIN_FREE_BYTES": str(FLOOR_MIB * MIB),
            "FLOWBOARD_STORAGE__MIN_FREE_PERCENT": "0",
            "FLOWBOARD_RATELIMIT__ENABLED": "false",
        }
    )
    serve = ServeProcess(env, tmp_path, free_port(), tmp_path / "serve.log")
    serve.start()
    try:
        yield serve
    finally:
        serve.stop()


def _noise_png(side: int) -> bytes:
    """An incompressible PNG of about side * side * 3 bytes."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


def _free(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _ballast(path: Path, size: int) -> None:
    """Someone else's file: the kind of write that fills a disk behind Flowboard's back."""
    with path.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))


async def _call(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as resp:
        return resp.status, await resp.json()


async def _upload(session: aiohttp.ClientSession, data: bytes) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="noise.png", content_type="image/png")
    return await _call(session, "POST", f"{API}/assets", data=form)  # type: ignore[no-any-return]


async def _run(session: aiohttp.ClientSession, flow_id: str, node_id: str) -> tuple[int, Any]:
    body = {"flowId": flow_id, "nodeId": node_id}
    return await _call(session, "POST", f"{API}/run-node", json=body)  # type: ignore[no-any-return]


async def _ended(session: aiohttp.ClientSession, execution_id: str) -> Any:
    async with asyncio.timeout(120):
        while True:
            status, body = await _call(session, "GET", f"{API}/executions/{execution_id}")
            assert status == 200, body
            if body["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return body
            await asyncio.sleep(0.2)


def _video(node_id: str, seconds: int, resolution: str) -> dict[str, Any]:
    data = {"prompt": node_id, "durationSeconds": seconds, "resolution": resolution}
    return {"id": node_id, "type": "video_gen", "data": data}


async def _fill_until_refused(
    session: aiohttp.ClientSession, flow_id: str, image: bytes
) -> dict[str, int]:
    """Uploads and runs until both answer 507; every answer before that succeeded."""
    counts = {"uploads": 0, "runs": 0}
    for _ in range(40):
        status, body = await _upload(session, image)
        if status == 507:
            break
        assert status == 201, body
        counts["uploads"] += 1
        status, body = await _run(session, flow_id, "small")
        if status == 507:
            break
        assert status == 202, body
        assert (await _ended(session, body["id"]))["status"] == "COMPLETED"
        counts["runs"] += 1
    else:
        raise AssertionError("the disk never filled")
    assert body["error"]["code"] == "insufficient_storage", body
    status, body = await _run(session, flow_id, "small")
    assert status == 507 and body["error"]["code"] == "insufficient_storage", body
    status, body = await _upload(session, image)
    assert status == 507, body
    return counts


def _check_files(assets: list[dict[str, Any]], media: Path) -> None:
    """Every stored reference points at a whole file with the recorded size and hash."""
    for asset in assets:
        for stored in (asset.get("storage"), asset.get("poster")):
            if stored is None:
                continue
            data = (media / stored["key"]).read_bytes()
            assert len(data) == stored["size"], stored
            assert hashlib.sha256(data).hexdigest() == stored["sha256"], stored
    assert not list(media.rglob("*.part")), "a partial file was left behind"


async def _assets(serve: ServeProcess) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(database_uri(database_child(serve)))
    try:
        return [a async for a in client.flowboard.assets.find({})]
    finally:
        await client.close()


async def test_small_disk_refuses_then_recovers(
    serve_on_small_disk: ServeProcess, small_disk: Path
) -> None:
    serve = serve_on_small_disk
    media = small_disk / "data" / "media"
    spare = small_disk / "someone-elses-file"
    _ballast(spare, 24 * MIB)
    image = _noise_png(1400)  # ~5.6 MiB
    async with aiohttp.ClientSession(serve.url) as session:
        nodes = [_video("small", 1, "480p"), _video("long", 12, "720p")]
        status, flow = await _call(
            session, "POST", f"{API}/flows", json={"name": "d", "nodes": nodes}
        )
        assert status == 201, flow
        counts = await _fill_until_refused(session, flow["id"], image)
        assert counts["uploads"] >= 3 and counts["runs"] >= 3, counts
        assert _free(small_disk) < FLOOR_MIB * MIB

        # Low, yet the database still writes: reads and edits work, /readyz says so.
        status, ready = await _call(session, "GET", "/readyz")
        assert status == 200 and ready["disk"] == "low" and ready["database"] == "up", ready
        assert any(fs["low"] for fs in ready["filesystems"]), ready
        status, body = await _call(
            session, "PATCH", f"{API}/flows/{flow['id']}", json={"name": "still writable"}
        )
        assert status == 200, body

        # Space freed by the operator: no restart needed.
        spare.unlink()
        status, ready = await _call(session, "GET", "/readyz")
        assert status == 200 and ready["disk"] == "ok", ready

        # A job whose output no longer fits (the disk filled while it rendered).
        status, run = await _run(session, flow["id"], "long")
        assert status == 202, run
        _ballast(spare, _free(small_disk) - 16 * MIB)
        failed = await _ended(session, run["id"])
        assert failed["status"] == "FAILED", failed
        assert failed["tasks"]["long"]["error"]["code"] == "storage_full", failed
        spare.unlink()

        status, run = await _run(session, flow["id"], "small")
        assert status == 202, run
        assert (await _ended(session, run["id"]))["status"] == "COMPLETED"
        status, upload = await _upload(session, image)
        assert status == 201, upload

    assets = await _assets(serve)
    _check_files(assets, media)
    ended = [a for a in assets if a.get("error")]
    assert [a["error"]["code"] for a in ended] == ["storage_full"]
    assert ended[0].get("storage") is None
    log = serve.log.read_text()
    assert "embedded database" not in log.replace("embedded database up", "")
    database_log = (small_disk / "data" / "secantusd.log").read_text(errors="replace")
    assert "No space left" not in database_log and "ENOSPC" not in database_log
