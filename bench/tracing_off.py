"""Tracing off costs nothing: run-node before and after the tracing hooks, in one run.

Run: .venv/bin/python bench/tracing_off.py --base bf087ea --rounds 3 --clients 20

Exports the `--base` revision (the commit before tracing) with `git archive` into a temp
folder (the repository is only read) and runs bench/run_node.py's workload alternately on
that tree and on this checkout (A B, then B A: whichever runs second meets a warmer
machine), `--rounds` times each, with no OTEL_* variable set: each
run starts its own `flowboard serve` from its tree (the child imports `flowboard` from its
working directory). The two trees' servers see the same machine load in turn, so the
ratio of the medians is the figure: this checkout's p50 latency / the base's, and the
base's throughput / this checkout's. Target: both ≤ 1.02. On a shared machine the
round-to-round spread is printed too: a ratio inside the spread says "no difference
measurable", not "exactly 1.00".
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import timeit
from dataclasses import dataclass
from pathlib import Path

from _util import REPO

sys.path.insert(0, str(REPO))
from flowboard.tracing.context import log_ids, span, traceparent

TARGET_RATIO = 1.02
LABEL = {
    "local-fps1": "local provider, fps 1 (minimum)",
    "veo-parked": "veo → FakeVeo, start held (jobs idle)",
}


@dataclass(frozen=True)
class Figures:
    """One run's p50 latency (ms) and throughput (req/s), from run_node.py's table row."""

    p50_ms: float
    req_per_s: float


def export(revision: str, into: Path) -> Path:
    """The tree of `revision`, written under `into` (git archive: the repository is only read)."""
    archive = into / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", revision], cwd=REPO, stdout=out, check=True)
    tree = into / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def run_once(tree: Path, args: argparse.Namespace) -> Figures:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    cmd = [
        sys.executable, str(tree / "bench" / "run_node.py"), "--variants", args.variant,
        "--clients", str(args.clients), "--requests-per-client", str(args.requests_per_client),
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    rows = (line.strip() for line in done.stdout.splitlines())
    row = next((r for r in rows if r.startswith("|") and LABEL[args.variant] in r), None)
    if done.returncode != 0 or row is None:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(2)
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    if cells[2] != "0":
        raise SystemExit(f"errors in a run: {row}")
    return Figures(float(cells[3]), float(re.sub(r"[^\d.]", "", cells[7])))


def hook_microseconds() -> float:
    """What the hooks of one run-node job cost while tracing is off, in µs (this process).

    One `traceparent()` (the take's record), three `span()` (job, provider start and
    follow), two storage writes' `active()` check inside `span`-less wrappers, and
    `log_ids()` for a few log lines: counted as 3 + 2 + 1 + 4 calls.
    """

    def one_job() -> None:
        traceparent()
        for _ in range(5):  # 3 spans; the 2 storage wrappers cost less than a span
            with span("x", flow_id="f", execution_id="e", node_id="n", asset_id="a"):
                pass
        for _ in range(4):
            log_ids()

    runs = 20_000
    return min(timeit.repeat(one_job, number=runs, repeat=5)) / runs * 1e6


def spread(values: list[float]) -> float:
    """(max - min) / median: how much rounds of one tree differ among themselves."""
    return (max(values) - min(values)) / statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the revision before the tracing hooks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests-per-client", type=int, default=5)
    parser.add_argument("--variant", choices=sorted(LABEL), default="local-fps1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowboard-base-") as temp:
        base = export(args.base, Path(temp))
        runs: dict[str, list[Figures]] = {"base": [], "head": []}
        for round_ in range(args.rounds):
            pair = [("base", base), ("head", REPO)]
            for name, tree in pair if round_ % 2 == 0 else pair[::-1]:  # ABBA: no order bias
                figures = run_once(tree, args)
                runs[name].append(figures)
                print(f"round {round_ + 1} {name}: p50 {figures.p50_ms:.1f} ms, "
                      f"{figures.req_per_s:.0f} req/s", flush=True)  # fmt: skip
    p50 = {name: [f.p50_ms for f in figs] for name, figs in runs.items()}
    rps = {name: [f.req_per_s for f in figs] for name, figs in runs.items()}
    latency = statistics.median(p50["head"]) / statistics.median(p50["base"])
    throughput = statistics.median(rps["base"]) / statistics.median(rps["head"])
    noise = max(spread(p50["base"]), spread(p50["head"]))
    print(f"\n{args.variant}, {args.clients} clients x {args.requests_per_client}, "
          f"{args.rounds} rounds each, base {args.base} vs this checkout, tracing off")  # fmt: skip
    print(f"p50 ratio (head/base): {latency:.3f}; throughput ratio (base/head): {throughput:.3f}")
    print(f"round-to-round spread of p50 within one tree: {noise:.1%}")
    hooks = hook_microseconds()
    p50_us = statistics.median(p50["base"]) * 1000
    print(f"the off hooks of one run-node job: {hooks:.2f} µs ({hooks / p50_us:.4%} of a p50)")
    ok = latency <= TARGET_RATIO and throughput <= TARGET_RATIO
    verdict = "PASS" if ok else "FAIL"
    if noise > TARGET_RATIO - 1:  # rounds of one tree differ by more than the target
        verdict += f" (not resolved to {TARGET_RATIO - 1:.0%}: the spread is {noise:.0%})"
    print(f"ratio ≤ {TARGET_RATIO}: {verdict}")


if __name__ == "__main__":
    main()
