"""SSE fan-out: N subscribers on one flow, a few node moves, delivery latency and server RSS/CPU.

Run: .venv/bin/python bench/sse_fanout.py --subscribers 10000 --changes 5 --client-procs 2

Starts its own `flowboard serve` (embedded database, temp data dir, WARNING logs, auth off)
on a free loopback port, creates a flow with one node, warms the server up with a short burst of
subscriptions (so one-off costs such as the database connection pool are not counted per
subscriber), then samples the server's RSS (the flowboard process only, not its database
child). Client worker processes (spawned, one event loop and one aiohttp session each) open
the N subscriptions, read the SYNC_CANVAS snapshot on each and report ready; the server's RSS
is sampled again. Then each change is one PATCH moving the node: the wall-clock time right
before the request is the send time, and every client records the wall-clock time it read the
frame carrying the new revision. The next change waits until all N got it (or a timeout).
Per change it prints the server's and the clients' CPU time; the machine's other CPU use is
printed too, since clients and server share this host's cores.

Targets: p99 delivery latency < 1 s and server RSS growth < 50 KiB per subscriber, with every
subscription connected and every frame delivered. The verdict is printed; the exit status is
0 whether it passes or fails (2 only when the bench itself could not run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from types import FrameType
from typing import Any

import aiohttp
import psutil
from _util import (
    KiB,
    MiB,
    Server,
    cpu_seconds,
    flowboard_server,
    percentile,
    raise_nofile,
    sample,
)

API = "/api/creative-flowboard"
NODE_ID = "bench-node"
TARGET_P99_MS = 1000.0
TARGET_KIB_PER_SUB = 50.0
FD_MARGIN = 256  # descriptors a client process keeps for itself (pipes, loop, session)
Message = tuple[str, int, dict[str, Any]]


class BenchTimeout(Exception):
    """The overall --timeout ran out."""


# --------------------------------------------------------------------------- client side


class SseParser:
    """Incremental text/event-stream parser: feed bytes, get the complete (event, data) pairs.

    Lines may end in CRLF, LF or CR; comments (such as the `: ping` heartbeat) are skipped.
    """

    def __init__(self) -> None:
        self._rest = b""
        self._event = "message"
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        lines = (self._rest + chunk).splitlines(keepends=True)
        # An unterminated last line, or one ending in a CR that may be half a CRLF, waits.
        self._rest = b""
        if lines and not lines[-1].endswith(b"\n"):
            self._rest = lines.pop()
        events: list[tuple[str, bytes]] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:
                if self._data:
                    events.append((self._event, b"\n".join(self._data)))
                self._event, self._data = "message", []
            elif not line.startswith(b":"):
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"event":
                    self._event = value.decode()
                elif name == b"data":
                    self._data.append(value)
        return events


async def first_events(resp: aiohttp.ClientResponse, parser: SseParser) -> list[tuple[str, bytes]]:
    """Read until at least one complete event has arrived; [] at end of stream."""
    while True:
        chunk = await resp.content.readany()
        if not chunk:
            return []
        events = parser.feed(chunk)
        if events:
            return events


def revision_of(data: bytes) -> int:
    return int(json.loads(data)["revision"])


@dataclass(frozen=True)
class WorkerConfig:
    index: int
    url: str
    count: int
    concurrency: int
    connect_deadline: float  # wall clock
    hard_deadline: float  # wall clock: the worker leaves whatever it is doing
    parent_pid: int


@dataclass
class WorkerState:
    count: int
    connected: int = 0
    failed: int = 0
    alive: int = 0
    first_error: str = ""
    snapshot_revisions: set[int] = field(default_factory=set)
    times: dict[int, list[float]] = field(default_factory=dict)
    target: int = -1
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def attempt_done(self) -> None:
        if self.connected + self.failed >= self.count:
            self.settled.set()


async def _connect(
    session: aiohttp.ClientSession, cfg: WorkerConfig, state: WorkerState, parser: SseParser
) -> aiohttp.ClientResponse | None:
    """Open one subscription and read its snapshot; None (and counted) on failure."""
    resp: aiohttp.ClientResponse | None = None
    try:
        async with asyncio.timeout(max(0.1, cfg.connect_deadline - time.time())):
            resp = await session.get(cfg.url, headers={"Accept": "text/event-stream"})
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}")
            events = await first_events(resp, parser)
            if not events or events[0][0] != "SYNC_CANVAS":
                raise RuntimeError(f"first event is {events[0][0] if events else 'EOF'}")
            if len(events) > 1:
                raise RuntimeError("more than the snapshot before any change")
            state.snapshot_revisions.add(revision_of(events[0][1]))
    except Exception as exc:
        state.failed += 1
        state.first_error = state.first_error or f"{type(exc).__name__}: {exc}"
        if resp is not None:
            resp.close()
        return None
    state.connected += 1
    state.alive += 1
    return resp


async def _subscriber(
    session: aiohttp.ClientSession,
    cfg: WorkerConfig,
    state: WorkerState,
    gate: asyncio.Semaphore,
) -> None:
    parser = SseParser()
    async with gate:
        resp = await _connect(session, cfg, state, parser)
    state.attempt_done()
    if resp is None:
        return
    try:
        while True:
            chunk = await resp.content.readany()
            now = time.time()  # as soon as the bytes are here; parsing comes after
            if not chunk:
                break
            for name, data in parser.feed(chunk):
                if name not in ("SYNC_CANVAS", "CANVAS_PATCH"):
                    continue
                revision = revision_of(data)
                got = state.times.setdefault(revision, [])
                got.append(now)
                if revision == state.target and len(got) >= state.alive:
                    state.wake.set()
    except (aiohttp.ClientError, OSError, ValueError):
        pass  # the connection broke: counted as missing frames
    finally:
        state.alive -= 1
        state.wake.set()
        resp.close()


async def _report_progress(state: WorkerState, cfg: WorkerConfig, out: Queue[Message]) -> None:
    while not state.settled.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await state.settled.wait()
        out.put(("progress", cfg.index, {"connected": state.connected, "failed": state.failed}))


def _get(commands: Queue[tuple[Any, ...]], timeout: float) -> tuple[Any, ...]:
    return commands.get(timeout=timeout)


async def _collect(state: WorkerState, revision: int, deadline: float) -> list[float]:
    """Wait until every live connection has read `revision` (or the deadline); its times."""
    state.target = revision
    while len(state.times.get(revision, ())) < state.alive and time.time() < deadline:
        state.wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.time())):
                await state.wake.wait()
    state.target = -1
    return state.times.pop(revision, [])


async def _serve_commands(
    cfg: WorkerConfig, state: WorkerState, commands: Queue[tuple[Any, ...]], out: Queue[Message]
) -> None:
    loop = asyncio.get_running_loop()
    while time.time() < cfg.hard_deadline and os.getppid() == cfg.parent_pid:
        try:
            command = await loop.run_in_executor(None, _get, commands, 1.0)
        except queue.Empty:
            continue
        if command[0] == "stop":
            return
        if command[0] == "collect":
            revision, deadline = int(command[1]), float(command[2])
            times = await _collect(state, revision, deadline)
            out.put(
                (
                    "collected",
                    cfg.index,
                    {"revision": revision, "times": times, "alive": state.alive},
                )
            )


async def _worker_main(
    cfg: WorkerConfig, commands: Queue[tuple[Any, ...]], out: Queue[Message], nofile: int
) -> None:
    started = time.time()
    state = WorkerState(cfg.count)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    session = aiohttp.ClientSession(connector=connector, timeout=timeout)
    gate = asyncio.Semaphore(cfg.concurrency)
    tasks = [asyncio.create_task(_subscriber(session, cfg, state, gate)) for _ in range(cfg.count)]
    progress = asyncio.create_task(_report_progress(state, cfg, out))
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, cfg.connect_deadline - time.time()) + 5.0):
                await state.settled.wait()
        progress.cancel()
        out.put(
            (
                "ready",
                cfg.index,
                {
                    "connected": state.connected,
                    "failed": state.failed,
                    "pending": cfg.count - state.connected - state.failed,
                    "first_error": state.first_error,
                    "snapshot_revisions": sorted(state.snapshot_revisions),
                    "seconds": time.time() - started,
                    "nofile": nofile,
                },
            )
        )
        await _serve_commands(cfg, state, commands, out)
    finally:
        progress.cancel()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15.0):
                await asyncio.gather(progress, *tasks, return_exceptions=True)
                await session.close()


def worker(cfg: WorkerConfig, commands: Queue[tuple[Any, ...]], out: Queue[Message]) -> None:
    """Entry point of a client process (spawned): the bench's main process steers it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    nofile = raise_nofile()
    try:
        asyncio.run(_worker_main(cfg, commands, out, nofile))
    except BaseException as exc:
        out.put(("error", cfg.index, {"error": f"{type(exc).__name__}: {exc}"}))
        raise
    out.put(("stopped", cfg.index, {}))


# ----------------------------------------------------------------------------- main side


class Api:
    """A keep-alive HTTP/1.1 connection to the server, for the few REST calls."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        self.conn.connect()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        self.conn.request(method, path, body=payload, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None

    def close(self) -> None:
        self.conn.close()


async def warm_up(url: str, count: int, concurrency: int, timeout: float) -> int:
    """Open `count` subscriptions (`concurrency` at a time), read each snapshot, close them."""
    ok = 0
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal ok
            async with gate, session.get(url) as resp:
                if resp.status == 200 and await first_events(resp, SseParser()):
                    ok += 1

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    return ok


@dataclass
class Clients:
    procs: list[SpawnProcess]
    commands: list[Queue[tuple[Any, ...]]]
    out: Queue[Message]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def gather(
        self,
        kind: str,
        deadline: float,
        accept: Callable[[dict[str, Any]], bool] = lambda _: True,
        on_progress: Callable[[dict[int, dict[str, Any]]], None] | None = None,
    ) -> dict[int, dict[str, Any]]:
        """One `kind` message per worker, until `deadline` (wall clock); raise if one dies."""
        got: dict[int, dict[str, Any]] = {}
        progress: dict[int, dict[str, Any]] = {}
        want = set(range(len(self.procs)))
        while want - got.keys():
            left = deadline - time.time()
            if left <= 0:
                break
            try:
                tag, index, payload = self.out.get(timeout=min(1.0, left))
            except queue.Empty:
                dead = [i for i in want - got.keys() if not self.procs[i].is_alive()]
                if dead:
                    raise RuntimeError(f"client process(es) {dead} exited early") from None
                continue
            if tag == "error":
                raise RuntimeError(f"client process {index}: {payload['error']}")
            if tag == "progress" and on_progress is not None:
                progress[index] = payload
                on_progress(progress)
            elif tag == kind and accept(payload):
                got[index] = payload
        return got

    def stop(self, timeout: float = 25.0) -> None:
        """Ask every worker to stop, then terminate/kill the ones that do not."""
        for commands in self.commands:
            with contextlib.suppress(Exception):
                commands.put(("stop",))
        deadline = time.monotonic() + timeout
        while any(p.is_alive() for p in self.procs) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty, OSError, EOFError, ValueError):
                while True:  # drain, so no worker blocks flushing its queue
                    self.out.get_nowait()
            time.sleep(0.1)
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        for q in [*self.commands, self.out]:
            q.cancel_join_thread()
            q.close()


def start_clients(
    url: str, counts: Sequence[int], concurrency: int, connect_deadline: float, hard: float
) -> Clients:
    ctx = mp.get_context("spawn")
    out: Queue[Message] = ctx.Queue()
    clients = Clients([], [], out)
    for index, count in enumerate(counts):
        commands: Queue[tuple[Any, ...]] = ctx.Queue()
        cfg = WorkerConfig(index, url, count, concurrency, connect_deadline, hard, os.getpid())
        proc = ctx.Process(target=worker, args=(cfg, commands, out), name=f"sse-client-{index}")
        proc.daemon = True
        clients.procs.append(proc)
        clients.commands.append(commands)
        proc.start()
    return clients


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@dataclass
class ChangeRow:
    number: int
    revision: int
    expected: int
    latencies_ms: list[float]
    ack_ms: float
    server_cpu_ms: float
    client_cpu_ms: float


def fmt(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def print_rows(rows: list[ChangeRow]) -> list[float]:
    """Print the per-change table and an overall row; return every latency."""
    header = (
        f"{'change':>6} {'rev':>5} {'delivered':>13} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'max ms':>8} {'ack ms':>7} {'srv CPU ms':>10} {'cli CPU ms':>10}"
    )
    print(header)
    print("-" * len(header))
    every: list[float] = []
    for row in rows:
        every += row.latencies_ms
        lat = row.latencies_ms
        print(
            f"{row.number:>6} {row.revision:>5} {f'{len(lat)}/{row.expected}':>13}"
            f" {fmt(percentile(lat, 50)):>8} {fmt(percentile(lat, 95)):>8}"
            f" {fmt(percentile(lat, 99)):>8}"
            f" {fmt(max(lat, default=math.nan)):>8} {fmt(row.ack_ms):>7}"
            f" {fmt(row.server_cpu_ms, 0):>10} {fmt(row.client_cpu_ms, 0):>10}"
        )
    print("-" * len(header))
    expected = sum(r.expected for r in rows)
    print(
        f"{'all':>6} {'':>5} {f'{len(every)}/{expected}':>13} {fmt(percentile(every, 50)):>8}"
        f" {fmt(percentile(every, 95)):>8} {fmt(percentile(every, 99)):>8}"
        f" {fmt(max(every, default=math.nan)):>8} {'':>7}"
        f" {fmt(sum(r.server_cpu_ms for r in rows), 0):>10}"
        f" {fmt(sum(r.client_cpu_ms for r in rows), 0):>10}"
    )
    return every


def plan_processes(args: argparse.Namespace) -> tuple[list[int], int]:
    """Connections per client process (adding processes if one would exceed its fd limit)."""
    nofile = raise_nofile()  # children (server, clients) inherit the raised soft limit
    per_proc = max(1, nofile - FD_MARGIN)
    procs = max(args.client_procs, math.ceil(args.subscribers / per_proc))
    if procs != args.client_procs:
        print(f"note: {procs} client processes (RLIMIT_NOFILE {nofile} per process)")
    if args.subscribers + FD_MARGIN > nofile:
        print(f"warning: the server may run out of descriptors (RLIMIT_NOFILE {nofile})")
    return split(args.subscribers, procs), nofile


def make_flow(api: Api) -> tuple[str, int]:
    status, flow = api.call("POST", f"{API}/flows", {"name": "sse-fanout bench"})
    if status != 201:
        raise RuntimeError(f"create flow: HTTP {status} {flow}")
    flow_id = str(flow["id"])
    status, flow = api.call(
        "POST", f"{API}/flows/{flow_id}/nodes", {"id": NODE_ID, "type": "prompt"}
    )
    if status != 201:
        raise RuntimeError(f"add node: HTTP {status} {flow}")
    return flow_id, int(flow["revision"])


def connect_all(
    args: argparse.Namespace, server: Server, url: str, counts: list[int], deadline: float
) -> tuple[Clients, dict[int, dict[str, Any]], float]:
    """Start the client processes and wait until each has reported ready."""
    started = time.time()
    last_print = [started]

    def on_progress(progress: dict[int, dict[str, Any]]) -> None:
        if time.time() - last_print[0] >= 5.0:
            last_print[0] = time.time()
            done = sum(p["connected"] for p in progress.values())
            failed = sum(p["failed"] for p in progress.values())
            print(f"  ... {done} connected, {failed} failed ({time.time() - started:.0f} s)")

    hard = started + args.timeout + 30
    clients = start_clients(url, counts, args.connect_concurrency, deadline, hard)
    ready = clients.gather("ready", deadline + 20, on_progress=on_progress)
    return clients, ready, time.time() - started


def _is_revision(revision: int, payload: dict[str, Any]) -> bool:
    return bool(payload["revision"] == revision)


def run_changes(
    args: argparse.Namespace,
    server: Server,
    api: Api,
    clients: Clients,
    flow_id: str,
    expected: int,
) -> tuple[list[ChangeRow], str]:
    """Move the node `--changes` times; each waits for every client's copy (or the timeout)."""
    rows: list[ChangeRow] = []
    machine, processes = _busy(), sample(server.pid).cpu + cpu_seconds(clients.pids)
    api.reconnect()  # a fresh keep-alive connection, so no change pays for a TCP handshake
    api.call("GET", f"{API}/flows/{flow_id}")
    for number in range(1, args.changes + 1):
        time.sleep(args.pause)
        server_cpu, client_cpu = sample(server.pid).cpu, cpu_seconds(clients.pids)
        body = {"position": {"x": number, "y": 2 * number}}
        sent = time.time()
        status, flow = api.call("PATCH", f"{API}/flows/{flow_id}/nodes/{NODE_ID}", body)
        ack_ms = (time.time() - sent) * 1000
        if status != 200:
            raise RuntimeError(f"move node: HTTP {status} {flow}")
        revision = int(flow["revision"])
        deadline = sent + args.change_timeout
        for commands in clients.commands:
            commands.put(("collect", revision, deadline))
        got = clients.gather("collected", deadline + 10, partial(_is_revision, revision))
        latencies = [(t - sent) * 1000 for p in got.values() for t in p["times"]]
        rows.append(
            ChangeRow(
                number,
                revision,
                expected,
                latencies,
                ack_ms,
                (sample(server.pid).cpu - server_cpu) * 1000,
                (cpu_seconds(clients.pids) - client_cpu) * 1000,
            )
        )
    machine = _busy() - machine
    processes = sample(server.pid).cpu + cpu_seconds(clients.pids) - processes
    summary = (
        f"CPU during the changes: machine busy {machine:.2f} CPU-s, of which server + clients"
        f" {processes:.2f}, everything else {max(0.0, machine - processes):.2f};"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    return rows, summary


def _busy() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def bench(args: argparse.Namespace) -> None:
    counts, nofile = plan_processes(args)
    deadline_all = time.time() + args.timeout
    n = args.subscribers
    print(
        f"SSE fan-out: {n} subscribers, {args.changes} changes, {len(counts)} client processes"
        f" ({'/'.join(map(str, counts))}), RLIMIT_NOFILE {nofile}, {os.cpu_count()} CPUs,"
        f" load average {os.getloadavg()[0]:.2f}"
    )
    with flowboard_server() as server:
        api = Api(server.port)
        clients: Clients | None = None
        try:
            flow_id, revision = make_flow(api)
            url = f"{server.base_url}{API}/subscribe/{flow_id}"
            print(f"server pid {server.pid} on port {server.port}; flow {flow_id} rev {revision}")
            if args.warmup:
                warm_conc = args.connect_concurrency * len(counts)
                ok = asyncio.run(warm_up(url, args.warmup, warm_conc, 60))
                print(f"warm-up: {ok}/{args.warmup} subscriptions opened and closed")
            time.sleep(args.settle)
            before = sample(server.pid)

            connect_deadline = min(time.time() + args.connect_timeout, deadline_all)
            clients, ready, connect_s = connect_all(args, server, url, counts, connect_deadline)
            time.sleep(args.settle)
            after = sample(server.pid)

            connected = sum(r["connected"] for r in ready.values())
            failed = sum(r["failed"] + r["pending"] for r in ready.values())
            failed += sum(counts[i] for i in range(len(counts)) if i not in ready)
            errors = {r["first_error"] for r in ready.values() if r["first_error"]}
            snapshots = sorted({v for r in ready.values() for v in r["snapshot_revisions"]})
            kib_per_sub = (after.rss - before.rss) / KiB / connected if connected else math.nan
            connect_cpu = after.cpu - before.cpu
            print(
                f"connect: {connected}/{n} subscribed in {connect_s:.1f} s"
                f" ({connected / max(connect_s, 1e-9):.0f}/s), {failed} failed;"
                f" snapshot revision(s) {snapshots}"
            )
            for error in sorted(errors):
                print(f"  first error: {error}")
            print(
                f"server RSS: {before.rss / MiB:.1f} MiB before, {after.rss / MiB:.1f} MiB with"
                f" {connected} subscribers -> {fmt(kib_per_sub, 2)} KiB per subscriber"
            )
            print(
                f"server CPU while subscribing: {connect_cpu:.2f} s"
                f" ({connect_cpu / max(after.at - before.at, 1e-9) * 100:.0f}% of one core,"
                f" {connect_cpu / max(connected, 1) * 1e6:.0f} us per subscriber)"
            )
            print()
            rows, cpu_summary = run_changes(args, server, api, clients, flow_id, connected)
            end = sample(server.pid)
        finally:
            api.close()
            if clients is not None:
                clients.stop()
    every = print_rows(rows)
    p99 = percentile(every, 99)
    print(cpu_summary)
    print(f"server RSS after the changes: {end.rss / MiB:.1f} MiB")
    checks = [
        (f"all {n} subscribed", connected == n),
        (
            f"every frame delivered ({len(every)}/{sum(r.expected for r in rows)})",
            len(every) == n * args.changes,
        ),
        (f"p99 delivery {fmt(p99)} ms < {TARGET_P99_MS:.0f} ms", p99 < TARGET_P99_MS),
        (
            f"RSS {fmt(kib_per_sub, 2)} KiB/subscriber < {TARGET_KIB_PER_SUB:.0f} KiB",
            kib_per_sub < TARGET_KIB_PER_SUB,
        ),
    ]
    for text, ok in checks:
        print(f"  {'ok  ' if ok else 'MISS'} {text}")
    verdict = "PASS" if all(ok for _, ok in checks) else "FAIL"
    print(f"{verdict}: N={n} p99={fmt(p99)} ms, {fmt(kib_per_sub, 2)} KiB/subscriber")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if signum == signal.SIGALRM:
        raise BenchTimeout("overall --timeout reached")
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10000, help="SSE connections (N)")
    parser.add_argument("--changes", type=int, default=5, help="node moves to deliver")
    parser.add_argument("--client-procs", type=int, default=2, help="client worker processes")
    parser.add_argument(
        "--connect-concurrency", type=int, default=50, help="subscriptions opening at once, each"
    )
    parser.add_argument("--warmup", type=int, default=200, help="subscriptions before baseline")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before RSS samples")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between changes")
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--change-timeout", type=float, default=30.0, help="per change")
    parser.add_argument("--timeout", type=float, default=900.0, help="whole bench, seconds")
    args = parser.parse_args()
    if args.subscribers < 1 or args.changes < 1 or args.client_procs < 1:
        parser.error("--subscribers, --changes and --client-procs must be >= 1")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGALRM, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.alarm(math.ceil(args.timeout) + 60)  # cleanup included; the phases are bounded too
    try:
        bench(args)
    except (BenchTimeout, RuntimeError, OSError, http.client.HTTPException) as exc:
        print(f"ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
    finally:
        signal.alarm(0)
    sys.exit(0)


if __name__ == "__main__":
    main()
