"""A Vertex result written to Cloud Storage, copied into Flowboard's storage: RSS growth.

Run: .venv/bin/python bench/veo_gcs_rss.py --size-mb 200

Starts a FakeVeo (tests/fakes/veo.py) in this process and `flowboard serve` (bench/_util.py)
in Vertex mode (project + bearer token) with `providers.veo.output_gcs_uri` set, so the fake
writes each result to its Cloud Storage and Flowboard reads it back through the JSON API
media download with the bearer token. One warm-up job (a small object) loads the SDK and
the storage path; then one job whose object is a real clip followed by --size-mb of MP4
`free` box. A thread samples the server's RSS every 5 ms; the growth is the peak during the
big job minus the RSS just before it. The stored video is then read back through
Flowboard's /media URL (in this process, not measured), hashed, sized and decoded.

Target: RSS growth < 64 MB for a 200 MB object; the video stored whole, read once from the
fake's storage with the bearer token, and decodable.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import psutil
from _load import (
    auth_headers,
    bench_env,
    create_flow,
    git_revision,
    install_signal_handlers,
    load_line,
    machine_line,
    table,
    verdict,
)
from _util import REPO, MiB, RssSampler, Server, flowboard_server

sys.path.insert(0, str(REPO))  # tests.fakes
from tests.fakes.veo import FakeVeo, Route, Script

API = "/api/creative-flowboard"
TARGET_GROWTH_MB = 64.0
OUTPUT_GCS_URI = "gs://flowboard-bench/renders/"
NODE = {"prompt": "bench", "durationSeconds": 4, "resolution": "720p", "aspectRatio": "16:9"}


@dataclass(frozen=True)
class Job:
    """One finished job as the API reports it."""

    status: str
    seconds: float
    size: int
    output_url: str
    error: str


async def run_job(
    session: aiohttp.ClientSession, server: Server, headers: dict[str, str], name: str
) -> Job:
    """Create a one-node flow, run it, wait for the end."""
    flow_id = await create_flow(session, server, headers, name, NODE)
    started = time.monotonic()
    body = {"flowId": flow_id, "nodeId": "v"}
    async with session.post(f"{server.base_url}{API}/run-node", json=body, headers=headers) as r:
        if r.status != 202:
            raise RuntimeError(f"run-node answered {r.status}: {await r.text()}")
        execution_id = (await r.json())["id"]
    while True:  # bounded by the bench's alarm
        url = f"{server.base_url}{API}/executions/{execution_id}"
        async with session.get(url, headers=headers) as resp:
            execution: dict[str, Any] = await resp.json()
        if execution["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            break
        await asyncio.sleep(0.1)
    task = execution["tasks"]["v"]
    seconds = time.monotonic() - started
    if task["status"] != "COMPLETED":
        return Job(task["status"], seconds, 0, "", str(task.get("error")))
    url = f"{server.base_url}{API}/assets/{task['outputAssetId']}"
    async with session.get(url, headers=headers) as resp:
        asset: dict[str, Any] = await resp.json()
    return Job("COMPLETED", seconds, int(asset["storage"]["size"]), task["outputUrl"], "")


@dataclass(frozen=True)
class Readback:
    size: int
    sha256: str
    frames: int
    width: int
    height: int


async def read_back(
    session: aiohttp.ClientSession, server: Server, headers: dict[str, str], output_url: str
) -> Readback:
    """Stream the stored video to a temp file; hash it and decode every frame."""
    url = output_url if output_url.startswith("http") else f"{server.base_url}{output_url}"
    digest, size = hashlib.sha256(), 0
    with tempfile.NamedTemporaryFile(suffix=".mp4") as out:
        async with session.get(url, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"GET {output_url} answered {resp.status}")
            async for chunk in resp.content.iter_chunked(MiB):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        out.flush()
        frames, width, height = await asyncio.to_thread(decode, Path(out.name))
    return Readback(size, digest.hexdigest(), frames, width, height)


def decode(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.codec_context.width, stream.codec_context.height


async def bench(server: Server, fake: FakeVeo, padding: int) -> dict[str, Any]:
    await fake.start()
    try:
        async with aiohttp.ClientSession() as session:
            headers, auth_line = await auth_headers(session, server)
            print(auth_line)
            fake.default_script = Script(polls_until_done=0)
            warm = await run_job(session, server, headers, "warm-up")
            print(f"warm-up job: {warm.status} in {warm.seconds:.1f} s, {warm.size} bytes")
            await asyncio.sleep(1.0)
            before = int(psutil.Process(server.pid).memory_info().rss)
            reads_before = fake.count(Route.MEDIA)
            fake.default_script = Script(polls_until_done=0, object_padding=padding)
            with RssSampler(server.pid) as sampler:
                job = await run_job(session, server, headers, "big")
            reads = list(fake.bucket.reads)
            readback = (
                await read_back(session, server, headers, job.output_url)
                if (job.status == "COMPLETED")
                else None
            )
            return {
                "before": before, "peak": sampler.peak, "samples": sampler.samples, "job": job,
                "reads": reads, "media_requests": fake.count(Route.MEDIA) - reads_before,
                "readback": readback, "expected": await expected_size(fake, padding),
            }  # fmt: skip
    finally:
        await fake.stop()


async def expected_size(fake: FakeVeo, padding: int) -> int:
    from tests.fakes.veo_storage import StoredObject

    return await fake.bucket.size(StoredObject("16:9", 4, padding))


def report(result: dict[str, Any], size_mb: int) -> bool:
    job: Job = result["job"]
    readback: Readback | None = result["readback"]
    growth = (result["peak"] - result["before"]) / MiB
    stored_ok = job.status == "COMPLETED" and job.size == result["expected"]
    read_ok = readback is not None and readback.size == job.size and readback.frames == 4 * 8
    rows = [
        ["job", f"{job.status} in {job.seconds:.1f} s {job.error}", "COMPLETED",
         verdict(job.status == "COMPLETED")],
        ["object size / stored size (bytes)", f"{result['expected']:,} / {job.size:,}", "equal",
         verdict(stored_ok)],
        ["media downloads from the fake's storage (bearer token)",
         f"{result['media_requests']} for this job", "1",
         verdict(result["media_requests"] == 1)],
        ["server RSS before / peak (MB)",
         f"{result['before'] / MiB:.0f} / {result['peak'] / MiB:.0f} "
         f"({result['samples']} samples)", "", ""],
        ["server RSS growth (MB)", f"{growth:.1f}", f"< {TARGET_GROWTH_MB:.0f}",
         verdict(growth < TARGET_GROWTH_MB)],
        ["read back: bytes, frames, size",
         f"{readback.size:,}, {readback.frames}, {readback.width}x{readback.height}"
         if readback else "-", "whole, 32 frames", verdict(read_ok)],
        ["read back sha256", readback.sha256[:16] if readback else "-", "(info)", ""],
    ]  # fmt: skip
    print(f"\n{size_mb} MB of padding after a 4 s clip, read from {OUTPUT_GCS_URI}")
    print(table(["measure", "value", "target", "result"], rows))
    ok = stored_ok and read_ok and growth < TARGET_GROWTH_MB and result["media_requests"] == 1
    print(f"\nat end: {load_line()}")
    print(f"overall: {verdict(ok)}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=200, help="padding of the big object")
    args = parser.parse_args()
    install_signal_handlers(600)
    fake = FakeVeo()
    env = {
        **bench_env(),
        "FLOWBOARD_PROVIDERS__DEFAULT": "veo",
        "FLOWBOARD_PROVIDERS__VEO__MODE": "vertex",
        "FLOWBOARD_PROVIDERS__VEO__PROJECT": "bench",
        "FLOWBOARD_PROVIDERS__VEO__ACCESS_TOKEN": fake.token,
        "FLOWBOARD_PROVIDERS__VEO__BASE_URL": fake.base_url,
        "FLOWBOARD_PROVIDERS__VEO__OUTPUT_GCS_URI": OUTPUT_GCS_URI,
        "FLOWBOARD_PROVIDERS__VEO__FIRST_POLL_SECONDS": "0.2",
        "FLOWBOARD_PROVIDERS__VEO__POLL_INTERVAL_SECONDS": "0.2",
        "FLOWBOARD_PROVIDERS__VEO__POLL_MAX_SECONDS": "0.2",
    }
    print(f"Veo Cloud Storage read-back bench — {time.strftime('%a %d %b %Y %H:%M:%S %Z')}")
    print(f"machine: {machine_line()}")
    print(f"at start: {load_line()}")
    print(f"flowboard: {git_revision()}")
    try:
        with flowboard_server(env) as server:
            result = asyncio.run(bench(server, fake, args.size_mb * MiB))
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped")
        sys.exit(2)
    except RuntimeError as exc:
        print(f"\nbench could not run: {exc}")
        sys.exit(2)
    report(result, args.size_mb)


if __name__ == "__main__":
    main()
