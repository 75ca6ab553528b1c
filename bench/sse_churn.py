"""SSE churn: subscribe/unsubscribe cycles, then the subscriber count and the server's RSS.

Run: .venv/bin/python bench/sse_churn.py --cycles 2000 --concurrency 50

One `flowboard serve` (embedded database, auth off, see bench/_util.py) and one flow.
`--concurrency` clients each open the flow's event stream, read its SYNC_CANVAS snapshot
(subscribed), and close the connection, again and again until `--cycles` streams were
opened and closed. The server's RSS is sampled before (after a warm-up of
`--warmup` cycles, so that first-use allocations do not count) and after; the
subscriber count (`flowboard_sse_subscribers` on /metrics, the hub's own count) is
polled from the last close until it reads 0. Targets (issue 12): 0 subscribers within
1 s of the last close and RSS within 20 MB of the start. Exit status 0 whether the
targets pass or not (2 only when the bench could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiohttp
from _load import git_revision, install_signal_handlers, load_line, machine_line
from _util import MiB, Server, flowboard_server, sample

API = "/api/creative-flowboard"
RSS_TARGET_MB = 20.0
ZERO_TARGET_S = 1.0


async def _subscribers(session: aiohttp.ClientSession) -> int:
    async with session.get("/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("flowboard_sse_subscribers "):
                return int(float(line.split()[1]))
    raise RuntimeError("no flowboard_sse_subscribers on /metrics")


async def _cycle(session: aiohttp.ClientSession, flow_id: str) -> None:
    """Open the stream, read up to the snapshot's end, close the connection."""
    resp = await session.get(f"{API}/subscribe/{flow_id}")
    try:
        if resp.status != 200:
            raise RuntimeError(f"subscribe answered {resp.status}")
        async with asyncio.timeout(30):
            seen = False
            async for line in resp.content:  # up to the blank line ending the snapshot
                if line.strip():
                    seen = True
                elif seen:
                    break
    finally:
        resp.close()  # drops the connection: the server sees the transport close


async def _churn(url: str, flow_id: str, cycles: int, concurrency: int) -> float:
    """Run the cycles; return the monotonic time of the last close."""
    left = cycles
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await _cycle(session, flow_id)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.monotonic()


async def _until_zero(url: str, closed_at: float, within: float) -> tuple[float | None, int]:
    async with aiohttp.ClientSession(url) as session:
        count = await _subscribers(session)
        while count and time.monotonic() - closed_at < within + 2.0:
            await asyncio.sleep(0.02)
            count = await _subscribers(session)
        return (time.monotonic() - closed_at if count == 0 else None), count


async def _flow(url: str) -> str:
    async with aiohttp.ClientSession(url) as session:
        body = {"name": "churn", "nodes": [{"id": "p", "type": "prompt"}]}
        async with session.post(f"{API}/flows", json=body) as resp:
            flow_id: str = (await resp.json())["id"]
            return flow_id


async def _run(server: Server, args: argparse.Namespace) -> bool:
    url = server.base_url
    flow_id = await _flow(url)
    await _churn(url, flow_id, args.warmup, args.concurrency)
    await asyncio.sleep(1.0)
    before = sample(server.pid).rss
    started = time.monotonic()
    closed_at = await _churn(url, flow_id, args.cycles, args.concurrency)
    took = closed_at - started
    to_zero, left = await _until_zero(url, closed_at, ZERO_TARGET_S)
    after = sample(server.pid).rss
    await asyncio.sleep(args.settle)
    settled = sample(server.pid).rss
    grew = (after - before) / MiB
    print(f"cycles: {args.cycles} in {took:.1f} s ({args.cycles / took:.0f}/s), "
          f"{args.concurrency} at once")  # fmt: skip
    zero = f"{to_zero:.3f} s" if to_zero is not None else f"never ({left} left)"
    print(f"subscribers 0 after the last close: {zero}")
    print(f"server RSS: {before / MiB:.1f} MB before, {after / MiB:.1f} MB right after "
          f"({grew:+.1f} MB), {settled / MiB:.1f} MB {args.settle:.0f} s later")  # fmt: skip
    ok = to_zero is not None and to_zero <= ZERO_TARGET_S and abs(grew) <= RSS_TARGET_MB
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args()
    install_signal_handlers(600)
    print(machine_line())
    print(f"flowboard {git_revision()}; {load_line()} at the start")
    try:
        with flowboard_server(env={"FLOWBOARD_SSE__HEARTBEAT_SECONDS": "15"}) as server:
            ok = asyncio.run(_run(server, args))
    except (RuntimeError, OSError) as exc:
        print(f"bench could not run: {exc}", file=sys.stderr)
        return 2
    print(f"{load_line()} at the end")
    print(f"targets: 0 subscribers within {ZERO_TARGET_S:.0f} s, RSS within "
          f"{RSS_TARGET_MB:.0f} MB: {'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
