"""Cross-server event delivery: edit on server A, event on server B vs on A itself.

Run: .venv/bin/python bench/cross_process.py --edits 300

Starts one `secantusd-py` (a single-node replica set: change streams need one) and two
`flowboard serve` on it with `cluster.enabled = true`. One flow; one subscriber on A and
one on B. Each edit (a node moved, through A, one at a time) is timed from just before
its request to the arrival of its CANVAS_PATCH at each subscriber. Target (issue 25):
p99 on B within +50 ms of p99 on A, in the same run. `--baseline` adds the single
server default (embedded database, cluster off) for comparison. Exit status 0 whether
the target passes or not (2 only when the bench could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from _load import git_revision, install_signal_handlers, load_line, machine_line, table, verdict
from _util import Server, flowboard_server, free_port, percentile

API = "/api/creative-flowboard"
TARGET_MS = 50.0


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def replica_set() -> Iterator[str]:
    """secantusd-py on a free port and a temp directory; yields its URI."""
    root = Path(tempfile.mkdtemp(prefix="flowboard-bench-rs-"))
    port = free_port()
    program = Path(sys.executable).parent / "secantusd-py"
    argv = [str(program), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--storage-path", str(root / "data"), "--log-level", "WARNING"]
    with (root / "log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not _port_open(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("secantusd-py did not start")
            time.sleep(0.1)
        yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


class Arrivals:
    """When each revision's CANVAS_PATCH reached one subscriber."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.subscribed = asyncio.Event()
        self.changed = asyncio.Condition()

    async def reached(self, revision: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: revision in self.at)

    async def follow(self, session: aiohttp.ClientSession, url: str) -> None:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
            event = ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                    self.subscribed.set()
                elif line.startswith("data: ") and event == "CANVAS_PATCH":
                    revision = int(line.split('"revision":', 1)[1].split(",", 1)[0])
                    self.at[revision] = time.perf_counter()
                    async with self.changed:
                        self.changed.notify_all()


async def measure(servers: list[Server], edits: int) -> list[list[float]]:
    """Latencies (ms) of edits made through servers[0], at a subscriber on each server."""
    async with aiohttp.ClientSession() as session:
        base = servers[0].base_url
        body = {"name": "bench", "nodes": [{"id": "p", "type": "prompt", "data": {}}]}
        async with session.post(f"{base}{API}/flows", json=body) as resp:
            flow_id = (await resp.json())["id"]
        arrivals = [Arrivals() for _ in servers]
        followers = [
            asyncio.create_task(a.follow(session, f"{s.base_url}{API}/subscribe/{flow_id}"))
            for a, s in zip(arrivals, servers, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(a.subscribed.wait() for a in arrivals)), 10)
        await asyncio.sleep(0.5)  # the flow's creation event has reached everyone
        sent: dict[int, float] = {}
        for i in range(edits):
            position = {"position": {"x": i, "y": i}}
            start = time.perf_counter()
            async with session.patch(f"{base}{API}/flows/{flow_id}/nodes/p", json=position) as r:
                revision = (await r.json())["revision"]
            sent[revision] = start
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(a.reached(revision) for a in arrivals)), 10)
        for task in followers:
            task.cancel()
        return [[(a.at[r] - t) * 1000 for r, t in sent.items() if r in a.at] for a in arrivals]


def row(label: str, values: list[float], edits: int) -> list[object]:
    return [
        label,
        f"{len(values)}/{edits}",
        f"{percentile(values, 50):.1f}",
        f"{percentile(values, 99):.1f}",
        f"{max(values):.1f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=300)
    parser.add_argument("--baseline", action="store_true", help="also one default server")
    args = parser.parse_args()
    install_signal_handlers(600)
    print(machine_line())
    print(f"revision {git_revision()}; {load_line()}")
    rows: list[list[object]] = []
    with replica_set() as uri:
        env = {
            "FLOWBOARD_DATABASE__URI": uri,
            "FLOWBOARD_DATABASE__NAME": "bench_cross",
            "FLOWBOARD_CLUSTER__ENABLED": "true",
        }
        with flowboard_server(env) as a, flowboard_server(env) as b:
            on_a, on_b = asyncio.run(measure([a, b], args.edits))
    rows += [row("cluster: edit on A, event on A", on_a, args.edits)]
    rows += [row("cluster: edit on A, event on B", on_b, args.edits)]
    if args.baseline:
        with flowboard_server() as single:
            (alone,) = asyncio.run(measure([single], args.edits))
        rows.append(row("one server (cluster off)", alone, args.edits))
    print(table(["delivery", "delivered", "p50 ms", "p99 ms", "max ms"], rows))
    print(f"after: {load_line()}")
    gap = percentile(on_b, 99) - percentile(on_a, 99)
    ok = len(on_b) == len(on_a) == args.edits and gap <= TARGET_MS
    print(f"p99 B - p99 A = {gap:+.1f} ms (target <= +{TARGET_MS:.0f} ms): {verdict(ok)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
