"""Database writes per job and per progress tick, counted at the driver.

Run: .venv/bin/python bench/progress_writes.py --jobs 5

Starts the real app in this process (embedded database, local provider at a low frame
rate, temp data dir) with a pymongo CommandListener registered before its client is
made, and runs one video_gen node `--jobs` times in a row, twice: once with progress
reports throttled away (`progress_min_interval_seconds` huge: only the first tick is
stored) and once
with every whole percent stored (interval 0). Each write statement the driver sends
(insert / update / delete statements, findAndModify) is counted per collection between
the run-node call and the end of its execution; a tick is a distinct progress value the
task reached below 100 (read from the execution documents the engine writes). The writes a
tick costs = (writes per job with ticks - writes per job without) / (the difference in
ticks per job).

Target (issue 14): at most one database write per progress tick. Prints PASS/FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from pymongo import monitoring

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flowboard.app import create_app  # noqa: E402
from flowboard.config import Settings  # noqa: E402

API = "/api/creative-flowboard"
WRITES = {"insert": "documents", "update": "updates", "delete": "deletes"}
# A job's own records; the webhook worker's polling claims are not the job's writes.
JOB_COLLECTIONS = {"assets", "executions", "flows"}


@dataclass
class WriteCounter(monitoring.CommandListener):
    """Counts write statements by collection, and the task progress values written."""

    counting: bool = False
    writes: Counter[str] = field(default_factory=Counter)
    progress: set[float] = field(default_factory=set)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.counting:
            return
        name, command = event.command_name, event.command
        if name not in WRITES and name != "findAndModify":
            return
        if command[name] not in JOB_COLLECTIONS:
            return
        if name in WRITES:
            statements = command.get(WRITES[name]) or []
            self.writes[str(command[name])] += len(statements)
            if command[name] == "executions":
                for statement in statements:
                    self._note_progress(statement.get("u", {}))
        elif name == "findAndModify":
            self.writes[str(command[name])] += 1

    def _note_progress(self, doc: dict[str, Any]) -> None:
        for task in (doc.get("tasks") or {}).values():
            if isinstance(task, dict) and 0 < task.get("progress", 0) < 100:
                self.progress.add(float(task["progress"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@dataclass(frozen=True)
class JobWrites:
    total: int
    by_collection: dict[str, int]
    ticks: int


async def _wait_done(client: TestClient[Any, Any], execution_id: str) -> dict[str, Any]:
    async with asyncio.timeout(120):
        while True:
            body: dict[str, Any] = await (
                await client.get(f"{API}/executions/{execution_id}")
            ).json()
            if body["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return body
            await asyncio.sleep(0.2)


async def measure(
    counter: WriteCounter, data_dir: Path, interval: float, jobs: int
) -> list[JobWrites]:
    settings = Settings.model_validate(
        {
            "data_dir": str(data_dir),
            "auth": {"enabled": False},
            "logging": {"format": "text", "level": "WARNING"},
            "providers": {"local": {"fps": 4}},
            "execution": {"progress_min_interval_seconds": interval},
        }
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        node = {
            "id": "v",
            "type": "video_gen",
            "data": {"prompt": "waves", "durationSeconds": 8, "resolution": "480p"},
        }
        flow = await (
            await client.post(f"{API}/flows", json={"name": "bench", "nodes": [node], "edges": []})
        ).json()
        assert "id" in flow, flow
        results = []
        for _ in range(jobs):
            counter.writes.clear()
            counter.progress.clear()
            counter.counting = True
            started = await client.post(
                f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"}
            )
            done = await _wait_done(client, (await started.json())["id"])
            await asyncio.sleep(0.5)  # let the final handler's writes land
            counter.counting = False
            assert done["status"] == "COMPLETED", done
            results.append(
                JobWrites(sum(counter.writes.values()), dict(counter.writes), len(counter.progress))
            )
        return results


def _summary(label: str, runs: list[JobWrites]) -> tuple[float, float]:
    writes = statistics.median(r.total for r in runs)
    ticks = statistics.median(r.ticks for r in runs)
    by = Counter[str]()
    for run in runs:
        by.update(run.by_collection)
    per = {k: v / len(runs) for k, v in sorted(by.items())}
    print(
        f"{label:>14}: writes/job median {writes:.0f}  ticks/job median {ticks:.0f}"
        f"  by collection {per}"
    )
    return writes, ticks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    counter = WriteCounter()
    monitoring.register(counter)
    with tempfile.TemporaryDirectory(prefix="fb-progress-") as tmp:
        quiet = asyncio.run(measure(counter, Path(tmp) / "a", 1e9, args.jobs))
        ticking = asyncio.run(measure(counter, Path(tmp) / "b", 0.0, args.jobs))
    base, base_ticks = _summary("no ticks", quiet)
    writes, ticks = _summary("every percent", ticking)
    # The first report is always stored, so the quiet run has one tick too.
    extra = ticks - base_ticks
    per_tick = (writes - base) / extra if extra else float("nan")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    print(f"commit {commit}  load {os.getloadavg()[0]:.2f}")
    print(f"writes per progress tick: {per_tick:.2f}")
    print("PASS" if per_tick <= 1.0 else "FAIL", "(target: at most 1 write per tick)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
