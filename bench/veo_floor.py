"""The floor under bench/inflight.py: what following N Veo operations costs without Flowboard.

Run: .venv/bin/python bench/veo_floor.py --operations 5000 --settle-seconds 55

Starts a FakeVeo (tests/fakes/veo.py) in this process whose operations never finish, and
one child process per variant that starts N operations through google-genai and then
follows all of them on the configured schedule (config.toml: first_poll_seconds,
typical_seconds, poll_interval_seconds, poll_max_seconds; flowboard/providers/veo_polling.py),
each in its own task, as Flowboard does:

- sdk: a bare loop of `client.aio.operations.get()` and `poll_delays()` sleeps, on the
  SDK client Flowboard builds (flowboard/providers/veo_client.py). Nothing else runs.
- provider: `VeoProvider.follow()` itself, with a progress callback that does nothing:
  the provider's code without the database, the events and the job around it.

After --settle-seconds, each child measures its own CPU time and poll count over
--window-seconds and its RSS, and prints them as one JSON line. inflight.py's figures
minus these are what the rest of Flowboard costs; the sdk figure is the least any
service following these operations through the SDK at this cadence can spend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import uvloop
from _load import git_revision, machine_line, table
from _util import REPO, MiB, raise_nofile, sample

sys.path.insert(0, str(REPO))  # tests.fakes
from google.genai import types

from flowboard.config import VeoSettings, load_settings
from flowboard.providers.base import Progress, VideoRequest
from flowboard.providers.veo import VeoProvider
from flowboard.providers.veo_client import VeoClient
from flowboard.providers.veo_polling import poll_delays, timing_for
from tests.fakes.veo import FakeVeo, Outcome, Script

VARIANTS = ("sdk", "provider")
START_CONCURRENCY = 50


@dataclass(frozen=True)
class Figures:
    variant: str
    operations: int
    polls_per_second: float
    cpu_percent: float
    ms_per_poll: float
    rss_mb: float


# --------------------------------------------------------------------------- the child


def _settings(port: int) -> VeoSettings:
    veo = load_settings(REPO / "config.toml").providers.veo
    base = f"http://127.0.0.1:{port}"
    return veo.model_copy(update={"mode": "gemini", "api_key": "fake-api-key", "base_url": base})


MODEL = "veo-3.0-generate-001"
REQUEST = VideoRequest("bench", "bench", 4, "16:9", "720p", model=MODEL)


async def _start_all(client: VeoClient, provider: VeoProvider | None, count: int) -> list[str]:
    """Start `count` operations: through the SDK, or through the provider (which then
    follows them from their start, as Flowboard does)."""
    aio = await client.aio()
    gate = asyncio.Semaphore(START_CONCURRENCY)
    source = types.GenerateVideosSource(prompt="bench")

    async def one() -> str:
        async with gate:
            if provider is not None:
                return await provider.start(REQUEST)
            operation = await aio.models.generate_videos(model=MODEL, source=source)
            return str(operation.name)

    return await asyncio.gather(*(one() for _ in range(count)))


class _Counter:
    def __init__(self) -> None:
        self.polls = 0


async def _follow_sdk(client: VeoClient, veo: VeoSettings, name: str, seen: _Counter) -> None:
    aio = await client.aio()
    pending = types.GenerateVideosOperation.model_validate({"name": name})
    delays = poll_delays(timing_for(veo, MODEL))  # as VeoProvider, from the start
    await asyncio.sleep(next(delays))
    while True:
        await aio.operations.get(pending)
        seen.polls += 1
        await asyncio.sleep(next(delays))


async def _follow_provider(provider: VeoProvider, name: str, seen: _Counter) -> None:
    async def report(progress: Progress) -> None:
        seen.polls += 1  # called once per answered poll of a running operation

    await provider.follow(name, REQUEST, report)


async def child(variant: str, port: int, count: int, settle: float, window: float) -> Figures:
    veo = _settings(port)
    provider = VeoProvider(veo)
    client = VeoClient(veo, 120.0)
    names = await _start_all(client, provider if variant == "provider" else None, count)
    seen = _Counter()
    if variant == "sdk":
        tasks = [asyncio.create_task(_follow_sdk(client, veo, n, seen)) for n in names]
    else:
        tasks = [asyncio.create_task(_follow_provider(provider, n, seen)) for n in names]
    await asyncio.sleep(settle)
    polls, cpu, wall = seen.polls, time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    polls, cpu, wall = seen.polls - polls, time.process_time() - cpu, time.monotonic() - wall
    rss_mb = sample(os.getpid()).rss / MiB
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.close()
    await provider.close()
    return Figures(
        variant, count, polls / wall, 100.0 * cpu / wall, 1000.0 * cpu / max(1, polls), rss_mb
    )


# --------------------------------------------------------------------------- the parent


def run_child(variant: str, port: int, args: argparse.Namespace) -> Figures:
    command = [
        sys.executable, __file__, "--child", variant, "--port", str(port),
        "--operations", str(args.operations), "--settle-seconds", str(args.settle_seconds),
        "--window-seconds", str(args.window_seconds),
    ]  # fmt: skip
    budget = args.settle_seconds + args.window_seconds + 600
    done = subprocess.run(command, capture_output=True, text=True, timeout=budget, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} child failed: {done.stderr[-2000:]}")
    return Figures(**json.loads(done.stdout.strip().splitlines()[-1]))


async def parent(args: argparse.Namespace) -> list[Figures]:
    fake = FakeVeo()
    fake.default_script = Script(Outcome.NEVER)
    await fake.start()
    try:
        results = []
        for variant in args.variants:
            polled_before = len(fake.polls)
            figures = await asyncio.to_thread(run_child, variant, fake.port, args)
            print(f"{variant}: {json.dumps(figures.__dict__)}", flush=True)
            if len(fake.polls) - polled_before == 0:
                raise RuntimeError(f"{variant}: the fake saw no polls")
            results.append(figures)
            fake.forget()  # the next child starts its own operations
        return results
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=5000)
    parser.add_argument("--settle-seconds", type=float, default=55.0)
    parser.add_argument("--window-seconds", type=float, default=30.0)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    raise_nofile()
    if args.child:
        figures = uvloop.run(
            child(args.child, args.port, args.operations, args.settle_seconds, args.window_seconds)
        )
        sys.stdout.write(json.dumps(figures.__dict__) + "\n")
        return 0
    veo = _settings(0)
    print(f"flowboard: {git_revision()}\n{machine_line()}")
    print(
        f"{args.operations} operations per variant (FakeVeo, never done); schedule "
        f"{timing_for(veo, MODEL)}; window "
        f"{args.window_seconds:g} s from {args.settle_seconds:g} s after the last start"
    )
    results = uvloop.run(parent(args))
    rows: list[list[Any]] = [
        [f.variant, f"{f.polls_per_second:.0f}", f"{f.cpu_percent:.1f}", f"{f.ms_per_poll:.2f}",
         f"{f.rss_mb:.0f}"]
        for f in results
    ]  # fmt: skip
    print(table(["variant", "polls/s", "CPU % of a core", "CPU ms per poll", "RSS MB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
