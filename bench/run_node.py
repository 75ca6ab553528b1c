"""run-node under load: C concurrent clients each POST /run-node R times; latency of the 202.

Run: .venv/bin/python bench/run_node.py --clients 200 --requests-per-client 5

For each variant it starts its own `flowboard serve` (embedded database, local storage, temp
data dir, WARNING logs; see bench/_util.py), creates one flow per client with one video_gen
node up front, warms up with a few sequential run-node calls, then lets all clients loose at
once. Each client calls run-node on its own flow R times in a row (a closed loop: the next
request leaves when the previous answer arrived; with --think-seconds T, T x 0.5-1.5 after
it, the clients' first calls spread over T). In a closed loop without think time the
latency is the queue: C clients in flight at X requests/s wait C / X on average. Latency is
measured per request in the client, from just before sending to the end of the 202 answer's
body. The clients share one aiohttp session (connector limit 0) in this process; its CPU
share is printed so a client-side bottleneck would show.

Every run-node starts a real background job, which competes with the request path for the
machine's cores. So the variants differ only in what those jobs cost:
  local       local provider at the configured fps (24): real H.264 renders, 2 at a time
  local-fps1  local provider at FLOWBOARD_PROVIDERS__LOCAL__FPS=1 (its minimum): tiny renders
  veo-polling provider veo pointed at a FakeVeo (in this process) whose operations never
              finish: each job starts its operation and polls it every 5-30 s, and every
              poll stores and publishes the estimated progress (database writes)
  veo-parked  the same, but the fake never answers the start (it holds the request for an
              hour; the SDK's request timeout is 120 s): the jobs sit idle, so only the
              request path itself is measured
  floor       the same clients call GET /healthz (answered from memory, through the same
              middlewares): what this machine, this client and aiohttp allow at best

Target: p99 < 100 ms with no errors. The exit status is 0 whether the target passes or not
(2 only when the bench could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from _load import (
    Call,
    auth_headers,
    bench_env,
    create_flows,
    git_revision,
    install_signal_handlers,
    load_line,
    machine_line,
    parse_env,
    run_node,
    server_db_bench,
    table,
    verdict,
)
from _util import REPO, Server, flowboard_server, percentile, raise_nofile

sys.path.insert(0, str(REPO))  # tests.fakes
from tests.fakes.veo import FakeVeo, Outcome, Route, Script

TARGET_P99_MS = 100.0
VARIANTS = ("local", "local-fps1", "veo-polling", "veo-parked", "floor")
LABELS = {
    "local": "local provider, fps 24 (renders compete)",
    "local-fps1": "local provider, fps 1 (minimum)",
    "veo-polling": "veo → FakeVeo, never done (jobs poll)",
    "veo-parked": "veo → FakeVeo, start held (jobs idle)",
    "floor": "floor: GET /healthz instead (no work at all)",
}


@dataclass(frozen=True)
class Result:
    variant: str
    calls: list[Call]
    seconds: float
    server_cpu: float
    db_cpu: float
    client_cpu: float
    rss_max_mb: float
    flows_seconds: float
    planned: int

    @property
    def expected(self) -> int:
        return 200 if self.variant == "floor" else 202

    @property
    def latencies_ms(self) -> list[float]:
        return [c.seconds * 1000 for c in self.calls if c.status == self.expected]

    @property
    def errors(self) -> int:
        return sum(c.status != self.expected for c in self.calls)

    @property
    def passed(self) -> bool:
        p99 = percentile(self.latencies_ms, 99)
        complete = len(self.calls) == self.planned
        return complete and self.errors == 0 and bool(self.latencies_ms) and p99 < TARGET_P99_MS

    def row(self) -> list[str]:
        lat = self.latencies_ms
        p50, p95, p99 = (percentile(lat, p) for p in (50, 95, 99))
        return [
            LABELS[self.variant],
            f"{len(self.calls)}/{self.planned}",
            str(self.errors),
            f"{p50:.1f}",
            f"{p95:.1f}",
            f"{p99:.1f}",
            f"{max(lat, default=float('nan')):.1f}",
            f"{len(self.calls) / self.seconds:.0f}",
            f"{self.server_cpu:.0f}",
            f"{self.rss_max_mb:.0f}",
            f"{self.db_cpu:.0f}",
            f"{self.client_cpu:.0f}",
            verdict(self.passed),
        ]


HEADER = [
    "variant", "requests sent/planned", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s",
    "server CPU %", "server RSS MB", "DB CPU %", "client CPU %", "p99 < 100 ms",
]  # fmt: skip


def node_data(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    if variant.startswith("veo"):  # Veo's own limits: 4/6/8 s, 720p/1080p; nothing is rendered
        return {"prompt": "bench", "durationSeconds": 4, "resolution": "720p", "provider": "veo"}
    return {
        "prompt": "bench",
        "durationSeconds": args.duration_seconds,
        "resolution": "480p",
        "provider": "local",
    }


def server_env(
    variant: str, fake: FakeVeo | None, deadline: float, extra: dict[str, str]
) -> dict[str, str]:
    env = bench_env()
    if variant == "local-fps1":
        env["FLOWBOARD_PROVIDERS__LOCAL__FPS"] = "1"
    if variant.startswith("veo") and fake is not None:
        env |= {
            "FLOWBOARD_PROVIDERS__VEO__MODE": "gemini",
            "FLOWBOARD_PROVIDERS__VEO__API_KEY": fake.api_key,
            "FLOWBOARD_PROVIDERS__VEO__BASE_URL": fake.base_url,
            "FLOWBOARD_PROVIDERS__VEO__DEADLINE_SECONDS": str(deadline),
        }
    return env | extra  # last: a tried configuration wins


async def client(
    session: aiohttp.ClientSession,
    server: Server,
    headers: dict[str, str],
    flow_id: str,
    requests: int,
    out: list[Call],
    stop_sending_at: float,
    think: float,
    floor: bool,
) -> None:
    # With a think time the clients start spread over one think time, and each waits
    # 0.5-1.5x it between its calls (a person pressing run, not a tight loop).
    await asyncio.sleep(random.uniform(0, think))
    for k in range(requests):
        if k:
            await asyncio.sleep(think * random.uniform(0.5, 1.5))
        if time.monotonic() >= stop_sending_at:  # the variant's budget is spent
            return
        if floor:
            out.append(await healthz(session, server))
        else:
            out.append(await run_node(session, server, headers, flow_id, timeout=60.0))


async def healthz(session: aiohttp.ClientSession, server: Server) -> Call:
    """GET /healthz, timed like run_node()."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(60.0), session.get(server.base_url + "/healthz") as resp:
            await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Call(started, time.perf_counter() - started, 0, f"{type(exc).__name__}: {exc}")
    return Call(started, time.perf_counter() - started, resp.status)


async def measure(
    server: Server, variant: str, args: argparse.Namespace, fake: FakeVeo | None
) -> Result:
    n_clients = args.clients
    if fake is not None:
        await fake.start()
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            headers, auth_line = await auth_headers(session, server)
            print(f"  {auth_line}")
            started = time.monotonic()
            data = node_data(variant, args)
            flows = await create_flows(session, server, headers, args.clients + 1, data)
            flows_seconds = time.monotonic() - started
            for _ in range(args.warmup):  # its own flow: the measured flows start fresh
                warm = await run_node(session, server, headers, flows[-1])
                if warm.status != 202:
                    raise RuntimeError(f"warm-up run-node answered {warm.status}: {warm.error}")
            await asyncio.sleep(1.0)  # let the warm-up jobs' first steps pass
            window, has_db = server_db_bench(server)
            stop = asyncio.Event()
            calls: list[Call] = []
            window.begin()
            sampler = asyncio.create_task(window.run(stop, args.budget_seconds + 120))
            stop_at = time.monotonic() + args.budget_seconds
            n = args.requests_per_client
            floor, think = variant == "floor", args.think_seconds
            await asyncio.gather(
                *(
                    client(session, server, headers, f, n, calls, stop_at, think, floor)
                    for f in flows[:n_clients]
                )
            )
            window.end()
            stop.set()
            await sampler
    finally:
        if fake is not None:
            await fake.stop()
    return Result(
        variant,
        calls,
        window.seconds,
        window.cpu_percent(0),
        window.cpu_percent(1) if has_db else float("nan"),
        window.cpu_percent(2),
        window.rss_max_mb,
        flows_seconds,
        args.clients * args.requests_per_client,
    )


def run_variant(variant: str, args: argparse.Namespace) -> Result:
    fake: FakeVeo | None = None
    if variant.startswith("veo"):
        fake = FakeVeo()
        fake.default_script = Script(Outcome.NEVER)
        if variant == "veo-parked":
            fake.delay, fake.delay_route = 3600.0, Route.START
    env = server_env(variant, fake, args.budget_seconds + 3600, args.extra_env)
    shown = " ".join(f"{k}={v}" for k, v in env.items() if "API_KEY" not in k) or "(defaults)"
    print(f"\n[{variant}] {LABELS[variant]}; server env: {shown}")
    with flowboard_server(env) as server:
        result = asyncio.run(measure(server, variant, args, fake))
        tail = server.log_tail(5)
    lat = result.latencies_ms
    print(
        f"  flows created in {result.flows_seconds:.1f} s; {len(result.calls)} requests in "
        f"{result.seconds:.2f} s; p99 {percentile(lat, 99):.1f} ms; errors {result.errors}"
    )
    if len(result.calls) < result.planned:
        print(
            f"  BUDGET SPENT: clients stopped sending after --budget-seconds "
            f"{args.budget_seconds:g}; {result.planned - len(result.calls)} requests not sent"
        )
    print("  " + table(HEADER, [result.row()]).replace("\n", "\n  "))
    errors = [c.error for c in result.calls if c.status != result.expected][:3]
    for error in errors:
        print(f"  error: {error}")
    if errors and tail:
        print(f"  server log tail:\n{tail}")
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--requests-per-client", type=int, default=5, help="run-node calls each")
    parser.add_argument("--duration-seconds", type=int, default=1, help="video length (local)")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated of {', '.join(VARIANTS)}"
    )
    parser.add_argument(
        "--think-seconds", type=float, default=0.0,
        help="each client's pause between its calls (0: a closed loop, the next call at once)",
    )  # fmt: skip
    parser.add_argument("--warmup", type=int, default=5, help="sequential run-node calls first")
    parser.add_argument(
        "--budget-seconds", type=float, default=300.0,
        help="per variant: clients send no new request after this (a bound on the run)",
    )  # fmt: skip
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="FLOWBOARD_X__Y=V",
        help="extra setting for the server (repeatable), e.g. to try a configuration",
    )  # fmt: skip
    args = parser.parse_args()
    try:
        args.extra_env = parse_env(args.server_env)
    except ValueError as exc:
        parser.error(str(exc))
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variant_list) - set(VARIANTS)
    if unknown or not args.variant_list:
        parser.error(f"unknown variants: {', '.join(sorted(unknown)) or '(none given)'}")
    if args.clients < 1 or args.requests_per_client < 1:
        parser.error("--clients and --requests-per-client must be >= 1")
    return args


def main() -> None:
    args = parse_args()
    # Per variant: start + flows + warm-up, the budget, the last answers (60 s), shutdown.
    install_signal_handlers(len(args.variant_list) * (args.budget_seconds + 300) + 60)
    raise_nofile()
    date = time.strftime("%a %d %b %Y %H:%M:%S %Z")
    print(f"run-node latency bench — {date}")
    print(f"machine: {machine_line()}")
    print(f"at start: {load_line()}")
    print(f"flowboard: {git_revision()}")
    print(
        f"load: {args.clients} concurrent clients x {args.requests_per_client} run-node calls, "
        f"think time {args.think_seconds:g} s, one flow (one video_gen node) per client, "
        "one aiohttp session, connector limit 0"
    )
    results: list[Result] = []
    try:
        for variant in args.variant_list:
            results.append(run_variant(variant, args))
    except KeyboardInterrupt:
        print("\ninterrupted (or the overall bound reached); servers stopped, temp dirs removed")
        if results:
            print(table(HEADER, [r.row() for r in results]))
        sys.exit(2)
    except RuntimeError as exc:
        print(f"\nbench could not run: {exc}")
        sys.exit(2)
    finally:
        signal.alarm(0)
    print(f"\nat end: {load_line()}")
    print(table(HEADER, [r.row() for r in results]))
    fake_note = ", which hosts the FakeVeo too" if "veo" in args.variants else ""
    print(
        "\nCPU % is percent of one core over the load window (server = the flowboard process, "
        f"DB = its embedded secantusd-py child, client = this bench process{fake_note}). "
        f"Target: p99 < {TARGET_P99_MS:.0f} ms, no errors."
    )


if __name__ == "__main__":
    main()
