"""What Flowboard's ComfyUI provider adds to a job over driving ComfyUI directly.

Run: .venv/bin/python bench/comfyui_overhead.py [--jobs 200] [--batches 6]

Starts the fake ComfyUI (tests/fakes/comfyui.py) in a child process, with the real
server's race on: the history entry appears `--history-delay-ms` after
`execution_success` (the prompt stays in queue_running meanwhile). In this process, two
variants run the same tiny text-to-video workflow (1 s at 8 fps, 20 sampler steps, a
real MP4 written by the fake), interleaved so that both see the same noise:

- direct: the least a client can do: one websocket for its clientId, POST /prompt with
  its own prompt id, wait for the output node's `executed` and `execution_success`, GET
  /view and read the file.
- flowboard: `ComfyUIProvider.validate()`, `start()`, `follow()` and reading the stream:
  everything Flowboard does with ComfyUI for a job (its database, storage and events
  are measured by bench/run_node.py).

Each job has its own seed, so nothing is served from ComfyUI's cache. Concurrency 1:
--jobs jobs of each variant, alternating; added latency = flowboard - direct at p50 and
p95. Concurrency 20: --batches batches of 20 concurrent jobs per variant, alternating;
ratio = flowboard / direct of the p50 and p95 job latency.
Targets: added p50 ≤ 15 ms and p95 ≤ 50 ms at concurrency 1; ratio ≤ 1.3 at 20.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiohttp
from _load import git_revision, load_line, machine_line, table, verdict
from _util import REPO, percentile

sys.path.insert(0, str(REPO))  # tests.fakes
from flowboard.config import ComfyUISettings, ComfyWorkflowSettings
from flowboard.providers.base import Progress, Variants, VideoRequest
from flowboard.providers.comfyui import ComfyUIProvider
from flowboard.providers.comfyui_workflow import fill, inputs_for, load_workflow
from tests.fakes.comfyui import FakeComfyUI

WORKFLOW = REPO / "tests" / "fakes" / "workflows" / "text_to_video.json"
MAPPING = {
    "prompt": "6.text", "negative_prompt": "7.text", "width": "5.width", "height": "5.height",
    "frames": "5.length", "fps": "9.fps", "seed": "3.seed", "output_node": "10",
}  # fmt: skip
FPS = 8
Job = Callable[[int], Awaitable[None]]


async def serve_fake(root: Path, history_delay: float) -> None:
    """Child process: run the fake until stdin closes; print its port first."""
    async with FakeComfyUI(root) as fake:
        fake.history_delay = history_delay
        print(json.dumps({"port": fake.port}), flush=True)
        await asyncio.to_thread(sys.stdin.read)


def request_for(job_id: str) -> VideoRequest:
    return VideoRequest(
        job_id=job_id,
        prompt="a red fox trotting through snow",
        duration_seconds=1,
        aspect_ratio="16:9",
        resolution="480p",
        fps=FPS,
    )


class Direct:
    """A minimal ComfyUI client: one websocket, POST /prompt, GET /view."""

    def __init__(self, url: str, settings: ComfyWorkflowSettings) -> None:
        self.url, self.client_id = url, f"direct-{uuid.uuid4().hex[:8]}"
        self.workflow = load_workflow("bench", settings)
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.session = aiohttp.ClientSession()
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        ws = await self.session.ws_connect(f"{self.url}/ws?clientId={self.client_id}")
        self.reader = asyncio.create_task(self._read(ws), name="bench-direct-ws")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            data = event.get("data") or {}
            prompt_id = str(data.get("prompt_id"))
            if event["type"] == "executed" and data.get("node") == self.workflow.output_node:
                self.files[prompt_id] = data["output"]["images"][0]
            elif event["type"] == "execution_success" and prompt_id in self.waiting:
                self.waiting.pop(prompt_id).set_result(self.files.pop(prompt_id))

    async def job(self, n: int) -> None:
        prompt_id = str(uuid.uuid4())
        request = request_for(f"direct-{n}-{prompt_id}")
        graph = fill(self.workflow, inputs_for(self.workflow, request, None))
        done = self.waiting[prompt_id] = asyncio.get_running_loop().create_future()
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        async with self.session.post(f"{self.url}/prompt", json=body) as resp:
            resp.raise_for_status()
        file = await done
        params = {k: file[k] for k in ("filename", "subfolder", "type")}
        async with self.session.get(f"{self.url}/view", params=params) as resp:
            resp.raise_for_status()
            async for _ in resp.content.iter_chunked(1 << 20):
                pass

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.session.close()


async def ignore(progress: Progress) -> None:
    """Progress reports go nowhere: the processor's reporter is not measured here."""


def flowboard_job(provider: ComfyUIProvider) -> Job:
    async def job(n: int) -> None:
        request = request_for(f"flowboard-{n}-{uuid.uuid4().hex}")
        provider.validate(request)
        prompt_id = await provider.start(request)
        output = await provider.follow(prompt_id, request, ignore)
        assert not isinstance(output, Variants)  # one video asked for, one returned
        async for _ in output.chunks():
            pass

    return job


async def timed(job: Job, n: int) -> float:
    started = time.perf_counter()
    await job(n)
    return (time.perf_counter() - started) * 1000.0


async def sequential(jobs: dict[str, Job], count: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for n in range(count):
        order = list(jobs) if n % 2 == 0 else list(reversed(jobs))
        for name in order:
            times[name].append(await timed(jobs[name], n))
    return times


async def batched(jobs: dict[str, Job], batches: int, width: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for b in range(batches):
        order = list(jobs) if b % 2 == 0 else list(reversed(jobs))
        for name in order:
            base = b * width
            results = await asyncio.gather(*(timed(jobs[name], base + i) for i in range(width)))
            times[name].extend(results)
    return times


def start_fake(root: Path, history_delay: float) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake", str(root), "--history-delay-ms",
         str(history_delay * 1000)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert child.stdout is not None
    port = json.loads(child.stdout.readline())["port"]
    return child, f"http://127.0.0.1:{port}"


async def measure(url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    settings = ComfyWorkflowSettings.model_validate({**MAPPING, "file": str(WORKFLOW)})
    provider = ComfyUIProvider(
        ComfyUISettings(url=url, workflow="bench", workflows={"bench": settings}), work
    )
    direct = Direct(url, settings)
    await direct.open()
    jobs = {"direct": direct.job, "flowboard": flowboard_job(provider)}
    try:
        await sequential(jobs, 5)  # warm-up: connections, imports, the fake's encoder
        one = await sequential(jobs, args.jobs)
        many = await batched(jobs, args.batches, 20)
    finally:
        await provider.close()
        await direct.close()
    return {"one": one, "many": many}


def report(results: dict[str, Any], args: argparse.Namespace, load: str) -> bool:
    one, many = results["one"], results["many"]
    p = {
        (scope, name, q): percentile(times[name], q)
        for scope, times in (("one", one), ("many", many))
        for name in ("direct", "flowboard")
        for q in (50, 95)
    }
    added50 = p["one", "flowboard", 50] - p["one", "direct", 50]
    added95 = p["one", "flowboard", 95] - p["one", "direct", 95]
    ratio50 = p["many", "flowboard", 50] / p["many", "direct", 50]
    ratio95 = p["many", "flowboard", 95] / p["many", "direct", 95]
    ok1 = added50 <= 15.0 and added95 <= 50.0
    ok20 = ratio50 <= 1.3 and ratio95 <= 1.3
    rows = [
        [
            "1", len(one["direct"]), f"{p['one', 'direct', 50]:.1f}",
            f"{p['one', 'flowboard', 50]:.1f}", f"+{added50:.1f} ms",
            f"{p['one', 'direct', 95]:.1f}", f"{p['one', 'flowboard', 95]:.1f}",
            f"+{added95:.1f} ms", verdict(ok1),
        ],
        [
            "20", len(many["direct"]), f"{p['many', 'direct', 50]:.1f}",
            f"{p['many', 'flowboard', 50]:.1f}", f"{ratio50:.2f}x",
            f"{p['many', 'direct', 95]:.1f}", f"{p['many', 'flowboard', 95]:.1f}",
            f"{ratio95:.2f}x", verdict(ok20),
        ],
    ]  # fmt: skip
    header = [
        "concurrency", "jobs each", "direct p50 ms", "flowboard p50 ms", "added p50",
        "direct p95 ms", "flowboard p95 ms", "added p95", "verdict",
    ]  # fmt: skip
    print(f"# bench/comfyui_overhead.py at {git_revision()}")
    print(f"# {machine_line()}")
    print(f"# history entry {args.history_delay_ms:.0f} ms after execution_success; {load}")
    print(table(header, rows))
    passed = ok1 and ok20
    print("PASS" if passed else "FAIL")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs per variant, one at a time")
    parser.add_argument("--batches", type=int, default=6, help="batches of 20 per variant")
    parser.add_argument("--history-delay-ms", type=float, default=20.0)
    parser.add_argument("--serve-fake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake is not None:
        asyncio.run(serve_fake(args.serve_fake, args.history_delay_ms / 1000.0))
        return 0
    with TemporaryDirectory(prefix="comfyui-bench-") as tmp:
        child, url = start_fake(Path(tmp) / "comfy", args.history_delay_ms / 1000.0)
        try:
            results = asyncio.run(measure(url, args, Path(tmp) / "work"))
            load = load_line()
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(timeout=30)
    return 0 if report(results, args, load) else 1


if __name__ == "__main__":
    sys.exit(main())
