"""Flowboard's CPU per Veo poll against the bare SDK's, same schedule, same run.

Run: .venv/bin/python bench/veo_cpu_ratio.py --operations 5000 --settle-seconds 60 \\
         --window-seconds 60

Runs bench/veo_floor.py (variants sdk and provider: the SDK loop alone, VeoProvider.follow
alone) and then bench/inflight.py (the whole `flowboard serve`: jobs, database, events),
each with N operations that never finish on config.toml's polling schedule, measured over
the same window length the same time after the last start. Compares CPU per poll (CPU
seconds / polls answered in the window): the processes poll at slightly different rates
(the floor starts its operations in a few seconds, run-node takes longer), so per poll
is the like-for-like figure. Target: Flowboard <= 1.3x the SDK floor.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from _load import git_revision, load_line, table, verdict
from _util import REPO

TARGET_RATIO = 1.3


def run(script: str, arguments: list[str], budget: float) -> tuple[list[dict[str, Any]], str]:
    """Run one bench; return the JSON figures it printed, and its output."""
    command = [sys.executable, str(REPO / "bench" / script), *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=budget, check=False)
    figures = []
    for line in done.stdout.splitlines():
        for prefix in ("JSON: ", "sdk: ", "provider: "):
            if line.startswith(prefix):
                figures.append(json.loads(line.removeprefix(prefix)))
    if done.returncode != 0 or not figures:
        raise RuntimeError(f"{script} failed ({done.returncode}): {done.stderr[-3000:]}")
    return figures, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=5000)
    parser.add_argument("--settle-seconds", type=float, default=60.0)
    parser.add_argument("--window-seconds", type=float, default=60.0)
    parser.add_argument("--show", action="store_true", help="print each bench's own output")
    args = parser.parse_args()
    common = ["--operations", str(args.operations), "--settle-seconds", str(args.settle_seconds)]
    budget = args.settle_seconds + args.window_seconds + 1800
    print(f"Veo CPU per poll, Flowboard vs floor — {time.strftime('%H:%M:%S %Z')}")
    print(f"flowboard: {git_revision()}; at start: {load_line()}")
    floor, floor_out = run(
        "veo_floor.py", [*common, "--window-seconds", str(args.window_seconds)], budget
    )
    served, served_out = run(
        "inflight.py", [*common, "--wait-seconds", str(args.window_seconds)], budget
    )
    if args.show:
        print(floor_out, served_out, sep="\n")
    results = [*floor, *served]
    sdk = next(f for f in results if f["variant"] == "sdk")
    rows = [
        [f["variant"], f["operations"], f"{f['polls_per_second']:.0f}",
         f"{f['cpu_percent']:.1f}", f"{f['ms_per_poll']:.3f}",
         f"{f['ms_per_poll'] / sdk['ms_per_poll']:.2f}x", f"{f['rss_mb']:.0f}"]
        for f in results
    ]  # fmt: skip
    header = ["variant", "operations", "polls/s", "CPU %", "CPU ms/poll", "vs sdk", "RSS MB"]
    print(table(header, rows))
    ratio = served[0]["ms_per_poll"] / sdk["ms_per_poll"]
    print(f"at end: {load_line()}")
    print(
        f"flowboard / sdk floor: {ratio:.2f}x (target <= {TARGET_RATIO}): "
        f"{verdict(ratio <= TARGET_RATIO)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
