"""A 2,000-node flow: one-node move latency, bytes a subscriber receives per move, snapshot size.

Run: .venv/bin/python bench/big_flow.py --nodes 2000 --moves 200

One `flowboard serve` (embedded database, auth off, see bench/_util.py). A flow of
--nodes nodes (half prompts with a sentence of text, half video_gen nodes each wired
from its prompt) is created in one call; one subscriber opens the flow's event stream
and reads its SYNC_CANVAS snapshot (its size is printed). Then --moves one-node moves
(`PATCH /flows/{id}/nodes/{nodeId}` with a new position), one after another: the
latency of each PATCH as the mover sees it, the size of its answer, and the bytes the
subscriber received for it (the whole SSE frame that carries the move's revision,
event name, id and data). Targets (issue 12): move p50 < 20 ms, < 10 KB per move to a
subscriber. Exit status 0 whether the targets pass or not (2 only when the bench
could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

import aiohttp
from _load import git_revision, install_signal_handlers, load_line, machine_line
from _util import flowboard_server, percentile

API = "/api/creative-flowboard"
P50_TARGET_MS = 20.0
BYTES_TARGET = 10_000


def _flow_body(count: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for i in range(count // 2):
        text = f"shot {i}: a harbour at dusk, boats drifting, gulls over the water"
        nodes.append({"id": f"p{i}", "type": "prompt", "position": {"x": 0, "y": i * 120},
                      "data": {"text": text}})  # fmt: skip
        nodes.append({"id": f"v{i}", "type": "video_gen", "position": {"x": 400, "y": i * 120},
                      "data": {"provider": "local", "durationSeconds": 2}})  # fmt: skip
        edges.append({"id": f"e{i}", "source": f"p{i}", "target": f"v{i}"})
    return {"name": "big", "nodes": nodes, "edges": edges}


class Frames:
    """SSE frames off one stream, each with its size in bytes as sent."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.buffer = b""

    async def next(self) -> tuple[str, int, bytes]:
        """(event name, frame size, data) of the next frame."""
        while True:
            for sep in (b"\r\n\r\n", b"\n\n"):
                end = self.buffer.find(sep)
                if end >= 0:
                    cut = end + len(sep)
                    frame, self.buffer = self.buffer[:cut], self.buffer[cut:]
                    return self._parse(frame)
            chunk = await self.resp.content.readany()
            if not chunk:
                raise RuntimeError("event stream ended")
            self.buffer += chunk

    @staticmethod
    def _parse(frame: bytes) -> tuple[str, int, bytes]:
        name, data = "message", b""
        for line in frame.splitlines():
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data += line[5:].lstrip()
        return name, len(frame), data


async def _move(
    session: aiohttp.ClientSession, url: str, node: str, i: int
) -> tuple[float, int, int]:
    body = {"position": {"x": 400 + i % 7, "y": i * 3}}
    started = time.perf_counter()
    async with session.patch(f"{url}/nodes/{node}", json=body) as resp:
        answer = await resp.read()
        took = (time.perf_counter() - started) * 1000
        if resp.status != 200:
            raise RuntimeError(f"move answered {resp.status}: {answer[:200]!r}")
    return took, len(answer), int(json.loads(answer)["revision"])


async def _frame_of(frames: Frames, revision: int) -> int:
    """Bytes received up to and including the frame of `revision` (heartbeats count too)."""
    total = 0
    async with asyncio.timeout(30):
        while True:
            name, size, data = await frames.next()
            total += size
            if name == "CANVAS_PATCH" and json.loads(data)["revision"] == revision:
                return total
            if name == "SYNC_CANVAS":
                raise RuntimeError("the subscriber fell behind and got a snapshot")


async def _run(base: str, args: argparse.Namespace) -> bool:
    async with aiohttp.ClientSession(base) as session:
        started = time.perf_counter()
        async with session.post(f"{API}/flows", json=_flow_body(args.nodes)) as resp:
            if resp.status != 201:
                raise RuntimeError(f"create answered {resp.status}: {await resp.text()}")
            flow = await resp.json()
        print(f"flow of {len(flow['nodes'])} nodes, {len(flow['edges'])} edges created in "
              f"{time.perf_counter() - started:.2f} s")  # fmt: skip
        url = f"{API}/flows/{flow['id']}"
        stream = await session.get(f"{API}/subscribe/{flow['id']}", timeout=None)
        frames = Frames(stream)
        name, snapshot, _ = await frames.next()
        if name != "SYNC_CANVAS":
            raise RuntimeError(f"first event {name}")
        latencies: list[float] = []
        answers: list[int] = []
        received: list[int] = []
        for i in range(args.warmup + args.moves):
            node = f"v{(i * 37) % (args.nodes // 2)}"
            took, answer, revision = await _move(session, url, node, i)
            got = await _frame_of(frames, revision)
            if i >= args.warmup:
                latencies.append(took)
                answers.append(answer)
                received.append(got)
        stream.close()
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    print(f"SYNC_CANVAS snapshot: {snapshot:,} bytes (once per (re)connect)")
    print(f"move latency over {args.moves} moves: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"p99 {p99:.1f} ms, max {max(latencies):.1f} ms")  # fmt: skip
    print(f"bytes to a subscriber per move: median {statistics.median(received):,.0f}, "
          f"max {max(received):,}")  # fmt: skip
    print(f"the mover's PATCH answer: median {statistics.median(answers):,.0f} bytes")
    return p50 < P50_TARGET_MS and max(received) < BYTES_TARGET


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    install_signal_handlers(900)
    print(machine_line())
    print(f"flowboard {git_revision()}; {load_line()} at the start")
    try:
        with flowboard_server() as server:
            ok = asyncio.run(_run(server.base_url, args))
    except (RuntimeError, OSError) as exc:
        print(f"bench could not run: {exc}", file=sys.stderr)
        return 2
    print(f"{load_line()} at the end")
    print(f"targets: move p50 < {P50_TARGET_MS:.0f} ms, < {BYTES_TARGET:,} bytes per move to a "
          f"subscriber: {'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
