"""Slow-header connections: N clients send a request head byte by byte, never ending it.

Run: .venv/bin/python bench/slow_headers.py --connections 1000 --header-timeout 10

One `flowboard serve` (embedded database, auth off, see bench/_util.py) with
`server.header_timeout_seconds` set to --header-timeout. N connections open from
127.0.0.1 (the per-address cap is raised above N so that it is the head deadline that
acts here) and each sends `GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nX-Drip: aaaa…` one byte
every --drip-seconds, never the blank line. Meanwhile a normal client calls
`GET /healthz` back to back on a fresh connection each time (`force_close`, so every
call is accepted past the dripping ones). Printed: how many slow connections the
server closed and when (seconds after they opened, and whether with a 408), and the
normal client's latency percentiles. Targets (issue 12): every slow connection closed
after the header timeout (within timeout + 2 s), the normal client's p99 < 50 ms.
Exit status 0 whether the targets pass or not (2 only when the bench could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field

import aiohttp
from _load import git_revision, install_signal_handlers, load_line, machine_line
from _util import flowboard_server, percentile, raise_nofile

HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Drip: "
P99_TARGET_MS = 50.0
LATE_SLACK_S = 2.0


@dataclass
class Slow:
    """What the dripping connections saw."""

    opened: int = 0
    closed_after: list[float] = field(default_factory=list)
    answered_408: int = 0
    bytes_sent: int = 0


async def _drip(host: str, port: int, drip: float, stop_at: float, slow: Slow) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    slow.opened += 1
    opened = time.monotonic()
    payload = HEAD + b"a" * 100_000
    answer = asyncio.ensure_future(reader.read())  # b"" or the 408, then EOF
    try:
        for byte in range(len(payload)):
            if answer.done() or time.monotonic() > stop_at:
                break
            writer.write(payload[byte : byte + 1])
            slow.bytes_sent += 1
            await asyncio.wait([answer], timeout=drip)
        data = await asyncio.wait_for(answer, max(0.0, stop_at - time.monotonic()) + 1.0)
        slow.closed_after.append(time.monotonic() - opened)
        if data.startswith(b"HTTP/1.1 408 "):
            slow.answered_408 += 1
    except (TimeoutError, ConnectionError):
        pass
    finally:
        answer.cancel()
        writer.close()


async def _normal(url: str, until: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(url, connector=connector) as session:
        while not until.is_set():
            started = time.perf_counter()
            async with session.get("/healthz") as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"/healthz answered {resp.status}")
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)
    return latencies


async def _run(url: str, port: int, args: argparse.Namespace) -> bool:
    slow = Slow()
    stop_at = time.monotonic() + args.header_timeout + 15.0
    done = asyncio.Event()
    normal = asyncio.ensure_future(_normal(url, done))
    opening = time.monotonic()
    drips = []
    for _ in range(args.connections):  # opened over about a second, not in one burst
        drips.append(asyncio.ensure_future(_drip("127.0.0.1", port, args.drip, stop_at, slow)))
        await asyncio.sleep(1.0 / args.connections)
    print(f"opened {slow.opened} slow connections in {time.monotonic() - opening:.1f} s")
    await asyncio.gather(*drips)
    done.set()
    latencies = await normal
    closed = slow.closed_after
    in_time = [c for c in closed if c <= args.header_timeout + LATE_SLACK_S]
    print(f"slow connections closed by the server: {len(closed)}/{args.connections} "
          f"({slow.answered_408} answered 408); {slow.bytes_sent} bytes dripped")  # fmt: skip
    if closed:
        print(f"closed after: min {min(closed):.2f} s, median {statistics.median(closed):.2f} s,"
              f" max {max(closed):.2f} s (header timeout {args.header_timeout:.1f} s)")  # fmt: skip
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    print(f"normal client /healthz: {len(latencies)} calls, p50 {p50:.1f} ms, p95 {p95:.1f} ms,"
          f" p99 {p99:.1f} ms, max {max(latencies):.1f} ms")  # fmt: skip
    early = [c for c in closed if c < args.header_timeout - 0.5]
    return len(in_time) == args.connections and not early and p99 < P99_TARGET_MS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument("--drip-seconds", dest="drip", type=float, default=0.5)
    args = parser.parse_args()
    install_signal_handlers(600)
    raise_nofile()
    print(machine_line())
    print(f"flowboard {git_revision()}; {load_line()} at the start")
    env = {
        "FLOWBOARD_SERVER__HEADER_TIMEOUT_SECONDS": str(args.header_timeout),
        "FLOWBOARD_SERVER__MAX_CONNECTIONS_PER_ADDRESS": str(args.connections + 100),
    }
    try:
        with flowboard_server(env=env) as server:
            ok = asyncio.run(_run(server.base_url, server.port, args))
    except (RuntimeError, OSError) as exc:
        print(f"bench could not run: {exc}", file=sys.stderr)
        return 2
    print(f"{load_line()} at the end")
    print(f"targets: all closed after the header timeout, normal p99 < {P99_TARGET_MS:.0f} ms: "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
