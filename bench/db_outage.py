"""The embedded database killed (kill -9) or hung (SIGSTOP) under `flowboard serve`.

Run: .venv/bin/python bench/db_outage.py --rounds 5 --hang-seconds 10

One `flowboard serve` (embedded database, default settings, see bench/_util.py). Each
kill round: kill -9 the `secantusd-py` child, then poll `/readyz` back to back and, in
parallel, call `GET /flows/{id}` back to back, until `/readyz` answers 200 again. The
hang round: SIGSTOP the child for --hang-seconds, with the same probes, then SIGCONT.

Printed per round: seconds from the signal to the first `/readyz` 503, to the first API
503 and to `/readyz` 200 again (kill rounds), and every API call's latency while the
database was down: answers other than 200/503, or 503s without `database_unavailable`,
are errors. Targets (issue 12): `/readyz` 503 within 2 s, back within 10 s (kill),
every API call answered within `server_selection_timeout_seconds` +
`socket_timeout_seconds` (2 + 5 s), no error. Exit status 0 whether the targets pass or
not (2 only when the bench could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import psutil
from _load import git_revision, load_line, machine_line
from _util import Server, flowboard_server

API = "/api/creative-flowboard"
CALL_BOUND = 2.0 + 5.0


@dataclass
class Round:
    """What one outage looked like from outside."""

    kind: str
    readyz_503: float | None = None
    api_503: float | None = None
    back: float | None = None
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _database(server: Server, other_than: int | None = None) -> psutil.Process:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in psutil.Process(server.pid).children(recursive=True):
            try:
                named = "secantusd" in " ".join(child.cmdline()) and child.pid != other_than
                if named and child.status() != psutil.STATUS_ZOMBIE:
                    return child
            except psutil.Error:
                continue
        time.sleep(0.05)
    raise RuntimeError("no embedded database child")


async def _readyz(
    session: aiohttp.ClientSession, result: Round, t0: float, done: asyncio.Event
) -> None:
    while not done.is_set():
        async with session.get("/readyz") as resp:
            await resp.read()
            now = time.monotonic() - t0
            if resp.status == 503 and result.readyz_503 is None:
                result.readyz_503 = now
            elif resp.status == 200 and result.readyz_503 is not None and result.kind == "kill":
                result.back = now
                done.set()
        await asyncio.sleep(0.02)


async def _api(
    session: aiohttp.ClientSession, url: str, result: Round, t0: float, done: asyncio.Event
) -> None:
    while not done.is_set():
        started = time.monotonic()
        async with session.get(url) as resp:
            body = await resp.json()
        took = time.monotonic() - started
        if resp.status == 503:
            result.latencies.append(took)
            if result.api_503 is None:
                result.api_503 = time.monotonic() - t0
            if body.get("error", {}).get("code") != "database_unavailable":
                result.errors.append(f"503 {body}")
        elif resp.status != 200:
            result.errors.append(f"{resp.status} {body}")
        await asyncio.sleep(0.02)


async def _round(server: Server, flow_url: str, kind: str, hang: float) -> Round:
    result = Round(kind)
    done = asyncio.Event()
    database = _database(server)
    async with aiohttp.ClientSession(server.base_url) as session:
        t0 = time.monotonic()
        if kind == "kill":
            database.kill()
        else:
            os.kill(database.pid, signal.SIGSTOP)
        probes = [
            asyncio.create_task(_readyz(session, result, t0, done)),
            asyncio.create_task(_api(session, flow_url, result, t0, done)),
        ]
        try:
            if kind == "kill":
                await asyncio.wait_for(done.wait(), 60)
            else:
                await asyncio.sleep(hang)
                os.kill(database.pid, signal.SIGCONT)
                done.set()
            await asyncio.wait_for(asyncio.gather(*probes), CALL_BOUND + 5)
        finally:
            if kind != "kill":
                os.kill(database.pid, signal.SIGCONT)
            for probe in probes:
                probe.cancel()
    await asyncio.sleep(3)  # let the health watcher see it back before the next round
    return result


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _report(rounds: list[Round]) -> bool:
    print("| round | /readyz 503 after s | first API 503 after s | back after s "
          "| API 503s | median s | max s | errors | verdict |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    passed = True
    for i, r in enumerate(rounds, 1):
        ok = (
            r.readyz_503 is not None
            and r.readyz_503 <= 2.0
            and (r.kind != "kill" or (r.back is not None and r.back <= 10.0))
            and all(t < CALL_BOUND for t in r.latencies)
            and not r.errors
        )
        passed &= ok
        median = statistics.median(r.latencies) if r.latencies else None
        worst = max(r.latencies) if r.latencies else None
        print(f"| {i} {r.kind} | {_cell(r.readyz_503)} | {_cell(r.api_503)} | {_cell(r.back)} "
              f"| {len(r.latencies)} | {_cell(median)} | {_cell(worst)} | {len(r.errors)} "
              f"| {'PASS' if ok else 'FAIL'} |")  # fmt: skip
        for error in r.errors[:3]:
            print(f"    error: {error[:200]}")
    return passed


async def _main(args: argparse.Namespace) -> int:
    print(machine_line())
    print(f"flowboard {git_revision()}; {load_line()}")
    with flowboard_server() as server:
        async with (
            aiohttp.ClientSession(server.base_url) as session,
            session.post(f"{API}/flows", json={"name": "outage"}) as resp,
        ):
            flow = await resp.json()
        await asyncio.sleep(0.5)  # past the database's ~100 ms of unflushed writes
        flow_url = f"{API}/flows/{flow['id']}"
        rounds = [await _round(server, flow_url, "kill", 0) for _ in range(args.rounds)]
        rounds.append(await _round(server, flow_url, "hang", args.hang_seconds))
    passed = _report(rounds)
    print(load_line())
    print("PASS" if passed else "FAIL")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="kill -9 rounds")
    parser.add_argument("--hang-seconds", type=float, default=10.0, help="SIGSTOP length")
    args = parser.parse_args()
    try:
        return asyncio.run(_main(args))
    except (RuntimeError, OSError) as exc:
        print(f"bench could not run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
