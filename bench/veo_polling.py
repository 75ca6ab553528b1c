"""Veo polling: polls per operation and completion-detection delay, old vs new schedule.

Run: .venv/bin/python bench/veo_polling.py [--operations 2000] [--seed 1]

Deterministic simulation with the real schedule code: the new schedule is
flowboard/providers/veo_polling.py `poll_delays()` with the timing config.toml gives the
default model (veo-3.0-generate-001); the old one is the schedule it replaced (veo.py up to
b170806, copied below: a first poll U(0, 5 s) after the start, then gaps of 5 s x1.5 up to
30 s, each x U(0.75, 1)). An operation lasting D seconds is done, as the Veo fake reports
it (`Script(seconds_until_done=D, polls_until_done=0)`), at the first poll at or after D:
its polls are the polls up to and including that one, its detection delay that poll's
time minus D. Each schedule follows --operations operations per duration, jitter drawn
from a seeded generator, for D = 30 s, 90 s and 6 min exactly and, to avoid judging a
schedule by where one fixed instant falls in its grid, for D spread uniformly ±10 %.

Target: >= 40 % fewer polls over the three durations, at the same or a better p95
detection delay (pooled over the three durations).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

from _load import git_revision, load_line, table, verdict
from _util import REPO, percentile

sys.path.insert(0, str(REPO))
from flowboard.config import load_settings
from flowboard.providers.veo_polling import PollTiming, poll_delays, timing_for

DURATIONS = (30.0, 90.0, 360.0)
TARGET_FEWER = 0.40
Schedule = Callable[[random.Random], Iterator[float]]


def old_schedule(rng: random.Random) -> Iterator[float]:
    """The replaced schedule: sleeps before each poll (veo.py `poll_delays` + first sleep)."""
    yield rng.uniform(0, 5.0)
    base = 5.0
    while True:
        yield base * rng.uniform(0.75, 1.0)
        base = min(30.0, base * 1.5)


def new_schedule(timing: PollTiming) -> Schedule:
    return lambda rng: poll_delays(timing, jitter=rng.uniform)


@dataclass(frozen=True)
class Outcome:
    """Polls and detection delays of the operations of one duration."""

    polls: list[int]
    delays: list[float]

    @property
    def mean_polls(self) -> float:
        return statistics.fmean(self.polls)


def follow(schedule: Schedule, duration: float, rng: random.Random) -> tuple[int, float]:
    """Polls until the first at or after `duration`; return (polls, detection delay)."""
    for count, at in enumerate(accumulate(schedule(rng)), start=1):
        if at >= duration:
            return count, at - duration
    raise AssertionError("unreachable: schedules never end")


def simulate(schedule: Schedule, operations: int, seed: int, spread: float) -> list[Outcome]:
    rng = random.Random(seed)
    out = []
    for duration in DURATIONS:
        runs = [
            follow(schedule, duration * rng.uniform(1 - spread, 1 + spread), rng)
            for _ in range(operations)
        ]
        out.append(Outcome([p for p, _ in runs], [d for _, d in runs]))
    return out


@dataclass(frozen=True)
class Summary:
    name: str
    outcomes: list[Outcome]

    @property
    def total_polls(self) -> float:
        return sum(o.mean_polls for o in self.outcomes)

    @property
    def pooled(self) -> list[float]:
        return [d for o in self.outcomes for d in o.delays]


def rows(summaries: list[Summary]) -> list[list[str]]:
    out = []
    for summary in summaries:
        for duration, o in zip(DURATIONS, summary.outcomes, strict=True):
            out.append([
                summary.name, f"{duration:g} s", f"{o.mean_polls:.2f}",
                f"{percentile(o.delays, 50):.1f}", f"{percentile(o.delays, 95):.1f}",
            ])  # fmt: skip
        out.append([
            summary.name, "all three", f"{summary.total_polls:.2f} (sum)",
            f"{percentile(summary.pooled, 50):.1f}", f"{percentile(summary.pooled, 95):.1f}",
        ])  # fmt: skip
    return out


def compare(old: Summary, new: Summary) -> bool:
    fewer = 1 - new.total_polls / old.total_polls
    old_p95, new_p95 = percentile(old.pooled, 95), percentile(new.pooled, 95)
    ok = fewer >= TARGET_FEWER and new_p95 <= old_p95
    print(
        f"{new.name}: {fewer:.0%} fewer polls than {old.name} (target >= {TARGET_FEWER:.0%}); "
        f"pooled p95 delay {new_p95:.1f} s vs {old_p95:.1f} s; {verdict(ok)}"
    )
    for duration, a, b in zip(DURATIONS, old.outcomes, new.outcomes, strict=True):
        per = 1 - b.mean_polls / a.mean_polls
        print(
            f"  {duration:g} s: {per:.0%} fewer polls; p95 delay "
            f"{percentile(b.delays, 95):.1f} s vs {percentile(a.delays, 95):.1f} s"
        )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=2000, help="per duration")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", default="", help="model whose timing to use (config.toml)")
    args = parser.parse_args()
    veo = load_settings(Path(REPO / "config.toml"), environ={}).providers.veo
    model = args.model or veo.model
    timing = timing_for(veo, model)
    wider = replace(timing, max_seconds=45)
    print(f"Veo polling schedules — flowboard {git_revision()}; {load_line()}")
    print(
        f"new: {model}: first poll {timing.first_seconds:g} s, every "
        f"{timing.interval_seconds:g} s within {timing.window[0]:g}-{timing.window[1]:g} s, "
        f"gaps <= {timing.max_seconds:g} s elsewhere, x U({1 - timing.jitter:g}, 1); "
        f"old: U(0, 5 s), then 5 s x1.5 up to 30 s, x U(0.75, 1); "
        f"{args.operations} operations per duration, seed {args.seed}"
    )
    ok = True
    for spread, label in ((0.0, "exact durations"), (0.1, "durations ±10 %")):
        summaries = [
            Summary("old", simulate(old_schedule, args.operations, args.seed, spread)),
            Summary("new", simulate(new_schedule(timing), args.operations, args.seed, spread)),
            Summary(
                "new, 45 s ceiling",
                simulate(new_schedule(wider), args.operations, args.seed, spread),
            ),
        ]
        print(f"\n{label}")
        header = ["schedule", "operation", "polls / operation", "delay p50 (s)", "p95 (s)"]
        print(table(header, rows(summaries)))
        ok = compare(summaries[0], summaries[1]) and ok
        compare(summaries[0], summaries[2])
    print(f"\noverall (new vs old, both duration sets): {verdict(ok)}")


if __name__ == "__main__":
    main()
