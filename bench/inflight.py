"""Many Veo jobs in flight: the cost of following N operations that take their time.

Run: .venv/bin/python bench/inflight.py --operations 5000 --wait-seconds 60

Starts a FakeVeo (tests/fakes/veo.py) in this process whose operations never finish, then
its own `flowboard serve` (embedded database, temp data dir, WARNING logs; bench/_util.py)
with providers.default = veo in Gemini mode pointed at the fake, the configured poll settings
left alone (config.toml: first poll 40 s, every 20 s within 70-110 s, gaps <= 30 s
elsewhere, each x U(0.98, 1); flowboard/providers/veo_polling.py) and a Veo deadline
longer than the bench. It creates one flow per operation (one video_gen node each), calls
run-node on each, `--concurrency` at a time, and waits until the fake has accepted every
start. Then, for --wait-seconds, it samples the flowboard process (not its database child,
not this process, which hosts the fake): CPU share as percent of one core over the window,
and RSS. From the fake's request records it computes the request rate over the window and
checks every operation's polling gaps against flowboard/providers/veo.py (see `schedule()`).

Targets: flowboard < 20 % of one core, RSS < 300 MB, polling intervals honoured, every
operation polled during the window. The exit status is 0 whether the targets pass or not
(2 only when the bench could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice, pairwise
from typing import Any

import aiohttp
from _load import (
    Call,
    Window,
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
from flowboard.config import Settings, VeoSettings, load_settings
from flowboard.providers import veo_polling
from tests.fakes.veo import FakeVeo, Outcome, Route, Script

TARGET_CPU_PERCENT = 20.0
TARGET_RSS_MB = 300.0
NODE = {"prompt": "bench", "durationSeconds": 4, "resolution": "720p", "aspectRatio": "16:9"}
SLICE_SECONDS = 10.0
SETTLE_SECONDS = 3.0


# --------------------------------------------------------------------------- the poll rule


@dataclass(frozen=True)
class Schedule:
    """Bounds of the k-th gap between consecutive polls of one operation (k = 0, 1, ...)."""

    low: list[float]  # gap k >= low[k]: the jittered delay at its smallest
    high: list[float]  # the jittered delay at its largest (the gap adds the poll's own time)

    def low_at(self, k: int) -> float:
        return self.low[min(k, len(self.low) - 1)]

    def high_at(self, k: int) -> float:
        return self.high[min(k, len(self.high) - 1)]


def schedule(veo: VeoSettings, count: int = 40) -> Schedule:
    """Bounds of the gaps of flowboard/providers/veo_polling.py's schedule.

    The loop sleeps delay_k after poll k has been answered (and its progress reported); every
    delay is its nominal gap x U(1 - jitter, 1), and no nominal gap is below the interval, so
    every gap between the arrivals of two polls is at least (1 - jitter) x interval. The
    longest delays come from the schedule with its jitter pinned high. The first poll
    (first_poll_seconds after the start) is no gap and not checked.
    """
    timing = veo_polling.timing_for(veo, veo.model)

    def top(low: float, high: float) -> float:
        return high

    high = list(islice(veo_polling.poll_delays(timing, jitter=top), 1, count + 1))
    return Schedule([(1 - timing.jitter) * timing.interval_seconds] * count, high)


@dataclass(frozen=True)
class PollCheck:
    operations: int
    gaps: int
    min_gap: float
    first_floor: float  # (1 - jitter) x poll_interval_seconds: no gap is shorter
    violations_flat: int  # gaps below first_floor
    violations_schedule: int  # gap k below low[k]
    worst_schedule: str
    late_p50: float  # gap k minus high[k]: how late the poll came past its longest delay
    late_p99: float
    late_max: float

    @property
    def passed(self) -> bool:
        return self.gaps > 0 and self.violations_flat == 0 and self.violations_schedule == 0


def poll_times(fake: FakeVeo) -> dict[str, list[float]]:
    """Arrival times of every poll, per operation (the Gemini poll path names it)."""
    by_op: dict[str, list[float]] = defaultdict(list)
    for record in fake.requests:
        if record.route is Route.POLL:
            by_op[record.path].append(record.at)
    return by_op


def check_polls(fake: FakeVeo, rule: Schedule) -> PollCheck:
    floor = rule.low[0]
    gaps: list[float] = []
    lateness: list[float] = []
    flat = sched = 0
    worst = (math.inf, "")
    by_op = poll_times(fake)
    for times in by_op.values():
        ordered = sorted(times)
        for k, (a, b) in enumerate(pairwise(ordered)):
            gap = b - a
            gaps.append(gap)
            lateness.append(gap - rule.high_at(k))
            flat += gap < floor
            sched += gap < rule.low_at(k)
            margin = gap - rule.low_at(k)
            if margin < worst[0]:
                worst = (margin, f"gap {k}: {gap:.3f} s vs >= {rule.low_at(k):.3f} s")
    return PollCheck(
        operations=len(by_op),
        gaps=len(gaps),
        min_gap=min(gaps, default=math.nan),
        first_floor=floor,
        violations_flat=flat,
        violations_schedule=sched,
        worst_schedule=worst[1] or "-",
        late_p50=percentile(lateness, 50),
        late_p99=percentile(lateness, 99),
        late_max=max(lateness, default=math.nan),
    )


# --------------------------------------------------------------------------- the run


@dataclass
class Launch:
    requested: int
    flows_seconds: float = 0.0
    launch_seconds: float = 0.0
    in_flight_seconds: float = 0.0  # from the first run-node until the fake had every start
    calls: list[Call] = field(default_factory=list)
    cut_short: bool = False  # the launch budget ran out before every run-node was sent
    at_fake: int = 0  # operations the fake accepted: the ones in flight

    @property
    def accepted(self) -> int:
        return sum(c.status == 202 for c in self.calls)


async def launch(
    session: aiohttp.ClientSession,
    server: Server,
    headers: dict[str, str],
    fake: FakeVeo,
    args: argparse.Namespace,
) -> Launch:
    """Create the flows, then run-node on each, `--concurrency` at a time, within
    --launch-seconds (what was not sent by then is left out, and the result says so)."""
    out = Launch(args.operations)
    started = time.monotonic()
    flows = await create_flows(
        session, server, headers, args.operations, NODE, concurrency=args.concurrency
    )
    out.flows_seconds = time.monotonic() - started
    next_flow = iter(flows)

    async def worker() -> None:
        for flow_id in next_flow:  # shared iterator: each flow once; bounded
            out.calls.append(await run_node(session, server, headers, flow_id, timeout=120))

    started = time.monotonic()
    try:
        async with asyncio.timeout(args.launch_seconds):
            await asyncio.gather(*(worker() for _ in range(min(args.concurrency, len(flows)))))
    except TimeoutError:
        out.cut_short = True
    out.launch_seconds = time.monotonic() - started
    # Wait until the fake has every accepted start and no new one came for SETTLE_SECONDS (a
    # run-node cut short by the budget may still be started by the server); bounded.
    count, quiet_since = len(fake.starts), time.monotonic()
    for _ in range(math.ceil(args.start_wait_seconds / 0.2)):
        if len(fake.starts) != count:
            count, quiet_since = len(fake.starts), time.monotonic()
        if count >= out.accepted and time.monotonic() - quiet_since >= SETTLE_SECONDS:
            break
        await asyncio.sleep(0.2)
    out.in_flight_seconds = time.monotonic() - started
    out.at_fake = len(fake.starts)
    return out


@dataclass(frozen=True)
class Measured:
    window: Window
    has_db: bool
    requests: int
    polls: int
    polled_ops: int
    slices: list[tuple[float, float, float]]  # (t from window start, req/s, CPU %)


def measure_slices(window: Window, arrivals: Sequence[float]) -> list[tuple[float, float, float]]:
    """Per SLICE_SECONDS of the window: fake req/s and flowboard CPU % of one core."""
    out: list[tuple[float, float, float]] = []
    points = window.slices
    if not points:
        return out
    edge = points[0]
    for index, (at, cpu) in enumerate(points[1:], start=1):
        if at - edge[0] < SLICE_SECONDS and index != len(points) - 1:
            continue
        span = max(1e-9, at - edge[0])
        count = sum(edge[0] <= t < at for t in arrivals)
        out.append((at - window.started, count / span, 100.0 * (cpu - edge[1]) / span))
        edge = (at, cpu)
    return out


async def sample_window(server: Server, fake: FakeVeo, seconds: float) -> Measured:
    window, has_db = server_db_bench(server)
    window.interval = 1.0
    first = len(fake.requests)
    stop = asyncio.Event()
    window.begin()
    sampler = asyncio.create_task(window.run(stop, seconds + 5))
    await asyncio.sleep(seconds)
    window.end()
    stop.set()
    await sampler
    inside = [r for r in fake.requests[first:] if window.started <= r.at < window.ended]
    polls = [r for r in inside if r.route is Route.POLL]
    arrivals = [r.at for r in inside]
    return Measured(
        window, has_db, len(inside), len(polls), len({r.path for r in polls}),
        measure_slices(window, arrivals),
    )  # fmt: skip


async def bench(
    server: Server, fake: FakeVeo, args: argparse.Namespace, veo: VeoSettings
) -> tuple[Launch, Measured, PollCheck, str]:
    await fake.start()
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            headers, auth_line = await auth_headers(session, server)
            print(auth_line)
            launched = await launch(session, server, headers, fake, args)
            print_launch(launched, fake)
            if args.settle_seconds > 0:
                print(f"settling {args.settle_seconds:g} s before the window (polls space out)")
                await asyncio.sleep(args.settle_seconds)
            measured = await sample_window(server, fake, args.wait_seconds)
            checked = check_polls(fake, schedule(veo))
            return launched, measured, checked, auth_line
    finally:
        await fake.stop()


# --------------------------------------------------------------------------- output


def print_launch(launched: Launch, fake: FakeVeo) -> None:
    calls = launched.calls
    ok = [c.seconds * 1000 for c in calls if c.status == 202]
    errors = [c for c in calls if c.status != 202]
    rate = len(calls) / max(1e-9, launched.launch_seconds)
    print(
        f"flows created in {launched.flows_seconds:.1f} s; {len(ok)} run-node 202s in "
        f"{launched.launch_seconds:.1f} s ({rate:.1f}/s; latency p50 {percentile(ok, 50):.0f} ms,"
        f" p99 {percentile(ok, 99):.0f} ms); {len(errors)} errors; {len(fake.starts)} operations"
        f" started at the fake {launched.in_flight_seconds:.1f} s after the first run-node"
    )
    if launched.cut_short:
        print(
            f"LAUNCH CUT SHORT: the --launch-seconds budget ran out with {len(calls)} of "
            f"{launched.requested} run-node calls answered; measuring what is in flight"
        )
    for call in errors[:3]:
        print(f"  error: {call.status} {call.error}")


def report(
    args: argparse.Namespace,
    veo: VeoSettings,
    launched: Launch,
    measured: Measured,
    checked: PollCheck,
) -> None:
    w = measured.window
    cpu, rss = w.cpu_percent(0), w.rss_max_mb
    started = launched.at_fake
    timing = veo_polling.timing_for(veo, veo.model)
    print(
        f"\npoll rule (flowboard/providers/veo_polling.py, {timing}):"
        f" every gap between consecutive polls of one operation >= (1 - jitter) x interval ="
        f" {checked.first_floor:g} s"
    )
    print(
        f"window: {w.seconds:.1f} s, from {args.settle_seconds:g} s after {started} operations"
        " were in flight\n"
    )
    rows: list[list[Any]] = [
        ["operations in flight", f"{started} / {launched.requested}", "all",
         verdict(started == launched.requested)],
        ["flowboard CPU (% of one core)", f"{cpu:.1f}", f"< {TARGET_CPU_PERCENT:.0f}",
         verdict(cpu < TARGET_CPU_PERCENT)],
        ["flowboard RSS max / mean (MB)", f"{rss:.0f} / {w.rss_mean_mb:.0f}",
         f"< {TARGET_RSS_MB:.0f}", verdict(rss < TARGET_RSS_MB)],
        ["requests to the fake (/s)", f"{measured.requests / w.seconds:.1f}",
         "(info)", ""],
        ["operations polled in the window", f"{measured.polled_ops} / {started}",
         "all", verdict(measured.polled_ops == started)],
        [f"min poll gap, {checked.gaps} gaps of {checked.operations} ops (s)",
         f"{checked.min_gap:.3f}", f">= {checked.first_floor:g}",
         verdict(checked.violations_flat == 0 and checked.gaps > 0)],
        ["gaps below their own step's floor", f"{checked.violations_schedule} "
         f"(closest: {checked.worst_schedule})", "0", verdict(checked.violations_schedule == 0)],
        ["poll lateness past the longest delay p50/p99/max (s)",
         f"{checked.late_p50:.2f} / {checked.late_p99:.2f} / {checked.late_max:.2f}",
         "(info)", ""],
        ["DB child CPU (% of one core)",
         f"{w.cpu_percent(1):.1f}" if measured.has_db else "n/a", "(info)", ""],
        ["bench process incl. FakeVeo CPU (% of one core)", f"{w.cpu_percent(2):.1f}",
         "(info)", ""],
    ]  # fmt: skip
    print(table(["measure", "value", "target", "result"], rows))
    print(f"\nper {SLICE_SECONDS:.0f} s of the window:")
    slice_rows = [[f"{t:.0f}", f"{r:.1f}", f"{c:.1f}"] for t, r, c in measured.slices]
    print(table(["t (s)", "fake req/s", "flowboard CPU %"], slice_rows))
    all_in = started == launched.requested and not launched.cut_short
    ok = (
        all_in
        and cpu < TARGET_CPU_PERCENT
        and rss < TARGET_RSS_MB
        and checked.passed
        and measured.polled_ops == started
    )
    polls_per_second = measured.polls / w.seconds
    figures = {
        "variant": "flowboard", "operations": started, "polls_per_second": polls_per_second,
        "cpu_percent": cpu, "ms_per_poll": 10.0 * cpu / max(1e-9, polls_per_second),
        "rss_mb": rss,
    }  # fmt: skip
    print(f"flowboard CPU per poll: {figures['ms_per_poll']:.2f} ms")
    print(f"JSON: {json.dumps(figures)}")
    print(f"\nat end: {load_line()}")
    print(f"overall: {verdict(ok)}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=5000, help="Veo jobs to keep in flight")
    parser.add_argument("--wait-seconds", type=float, default=60.0, help="measured window (s)")
    parser.add_argument(
        "--settle-seconds", type=float, default=0.0,
        help="wait this long after the launch before the window (0: measure at once, the "
        "busiest phase, when every operation is young and polled most often)",
    )  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=50, help="run-node calls at a time")
    parser.add_argument(
        "--launch-seconds", type=float, default=900.0, help="budget for sending the run-nodes"
    )
    parser.add_argument(
        "--start-wait-seconds", type=float, default=120.0,
        help="bound of the wait for the fake to see every accepted start",
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
    if args.operations < 1 or args.wait_seconds <= 0 or args.concurrency < 1:
        parser.error("--operations, --wait-seconds and --concurrency must be positive")
    return args


def main() -> None:
    args = parse_args()
    overall = (
        args.launch_seconds + args.start_wait_seconds + args.settle_seconds + args.wait_seconds
        + 900
    )  # fmt: skip
    install_signal_handlers(overall)
    raise_nofile()
    fake = FakeVeo()
    fake.default_script = Script(Outcome.NEVER)
    env = {
        **bench_env(),
        "FLOWBOARD_PROVIDERS__DEFAULT": "veo",
        "FLOWBOARD_PROVIDERS__VEO__MODE": "gemini",
        "FLOWBOARD_PROVIDERS__VEO__API_KEY": fake.api_key,
        "FLOWBOARD_PROVIDERS__VEO__BASE_URL": fake.base_url,
        "FLOWBOARD_PROVIDERS__VEO__DEADLINE_SECONDS": str(max(3600.0, overall + 600)),
        **args.extra_env,  # last: a tried configuration wins (and the poll check follows it)
    }
    settings: Settings = load_settings(REPO / "config.toml", environ=env)
    veo = settings.providers.veo
    print(f"in-flight Veo jobs bench — {time.strftime('%a %d %b %Y %H:%M:%S %Z')}")
    print(f"machine: {machine_line()}")
    print(f"at start: {load_line()}")
    print(f"flowboard: {git_revision()}")
    print(
        f"{args.operations} operations (FakeVeo, never done), launched {args.concurrency} at a "
        f"time; veo schedule {veo_polling.timing_for(veo, veo.model)} "
        "(config.toml, or --server-env), "
        f"deadline {veo.deadline_seconds:g} s"
    )
    extra = {k: v for k, v in env.items() if "API_KEY" not in k}
    print("server env: " + " ".join(f"{k}={v}" for k, v in extra.items()))
    try:
        with flowboard_server(env) as server:
            launched, measured, checked, _ = asyncio.run(bench(server, fake, args, veo))
    except KeyboardInterrupt:
        print("\ninterrupted (or the overall bound was reached); server stopped, temp dir removed")
        sys.exit(2)
    except RuntimeError as exc:
        print(f"\nbench could not run: {exc}")
        sys.exit(2)
    finally:
        signal.alarm(0)
    report(args, veo, launched, measured, checked)


if __name__ == "__main__":
    main()
