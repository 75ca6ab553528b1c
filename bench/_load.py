"""Helpers of the request-path benches (run_node.py, inflight.py): auth, flows, sampling, tables.

Everything here talks only to 127.0.0.1. `_util.py` (owned elsewhere) starts the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import aiohttp
import psutil
from _util import REPO, MiB, Server, cpu_seconds, sample

from flowboard.config import Settings

API = "/api/creative-flowboard"
Headers = dict[str, str]


# --------------------------------------------------------------------------- signals


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def install_signal_handlers(overall_timeout: float) -> None:
    """SIGINT/SIGTERM/SIGALRM all unwind as KeyboardInterrupt, so every `finally` runs and the
    server, its database and the temp data dir are cleaned up; SIGALRM bounds the whole run."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGALRM, _raise_interrupt)
    signal.alarm(max(1, int(overall_timeout)))


# --------------------------------------------------------------------------- machine


def load_line() -> str:
    """The machine's load average: other work sharing the 2 cores skews every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def machine_line() -> str:
    """One line naming the machine: cores, CPU model, memory, OS, Python."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / (1 << 30)
    return (
        f"{os.cpu_count()} cores ({model}), {memory:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """--server-env KEY=VALUE items (FLOWBOARD_* only) as a dict; ValueError names a bad one."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("FLOWBOARD_"):
            raise ValueError(f"--server-env wants FLOWBOARD_<SECTION>__<KEY>=VALUE, got {pair!r}")
        env[key] = value
    return env


def git_revision() -> str:
    """The checked-out commit, and whether flowboard/ differs from it."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "flowboard"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip
    return done.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


# --------------------------------------------------------------------------- auth


def bench_env() -> dict[str, str]:
    """Overrides both request-path benches set: the per-caller run rate limit off, where the
    service has one (it answers 429 past `burst` run requests of one token; the benches
    measure the service behind it, and with auth off there is no caller to charge anyway)."""
    env: dict[str, str] = {}
    if "ratelimit" in Settings.model_fields:
        env["FLOWBOARD_RATELIMIT__ENABLED"] = "false"
    return env


def database_uri(server: Server) -> str | None:
    """The mongodb:// URI of the server's embedded database child (its listening port)."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(server.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                for conn in child.net_connections(kind="tcp"):
                    if conn.status == psutil.CONN_LISTEN and conn.laddr:
                        return f"mongodb://127.0.0.1:{conn.laddr.port}/?directConnection=true"
    return None


def create_token(server: Server) -> str:
    """`flowboard token create --org default --name bench` against the server's own database."""
    uri = database_uri(server)
    if uri is None:
        raise RuntimeError("auth is on but the embedded database's port could not be found")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env |= {
        "FLOWBOARD_DATABASE__URI": uri,
        "FLOWBOARD_DATA_DIR": str(server.data_dir / "token-cli"),
        "FLOWBOARD_LOGGING__LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "flowboard", "--config", str(REPO / "config.toml")]
    cmd += ["token", "create", "--org", "default", "--name", "bench"]
    done = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    token = done.stdout.strip()
    if done.returncode != 0 or not token:
        raise RuntimeError(f"flowboard token create failed ({done.returncode}): {done.stderr}")
    return token


async def auth_headers(session: aiohttp.ClientSession, server: Server) -> tuple[Headers, str]:
    """Headers for API calls, and a line saying how auth was handled.

    bench/_util.py sets FLOWBOARD_AUTH__ENABLED=false when the service has an `[auth]`
    section; should the server still answer 401 (auth on), a token is created with the CLI.
    """
    url = f"{server.base_url}{API}/flows?limit=1"
    async with session.get(url) as resp:
        await resp.read()
        status = resp.status
    if status != 401:
        state = "disabled (FLOWBOARD_AUTH__ENABLED=false, set by bench/_util.py)"
        return {}, f"auth: {state}; GET /flows without a token answered {status}"
    token = await asyncio.to_thread(create_token, server)
    headers = {"Authorization": f"Bearer {token}"}
    async with session.get(url, headers=headers) as resp:
        await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET /flows with the new token answered {resp.status}")
    line = "auth: enabled; bearer token from `flowboard token create --org default --name bench`"
    return headers, line


# --------------------------------------------------------------------------- API calls


async def create_flow(
    session: aiohttp.ClientSession,
    server: Server,
    headers: Headers,
    name: str,
    node_data: dict[str, Any],
    node_id: str = "v",
) -> str:
    """POST /flows with one video_gen node; return the flow id."""
    body = {"name": name, "nodes": [{"id": node_id, "type": "video_gen", "data": node_data}]}
    async with session.post(f"{server.base_url}{API}/flows", json=body, headers=headers) as resp:
        text = await resp.text()
        if resp.status != 201:
            raise RuntimeError(f"POST /flows answered {resp.status}: {text[:300]}")
        flow: dict[str, Any] = await resp.json()
    return str(flow["id"])


async def create_flows(
    session: aiohttp.ClientSession,
    server: Server,
    headers: Headers,
    count: int,
    node_data: dict[str, Any],
    concurrency: int = 32,
) -> list[str]:
    """Create `count` one-node flows, `concurrency` at a time; return their ids in order."""
    ids: list[str] = [""] * count
    next_index = iter(range(count))

    async def worker() -> None:
        for index in next_index:  # shared iterator: each index is taken once; bounded
            ids[index] = await create_flow(session, server, headers, f"bench-{index}", node_data)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return ids


@dataclass(frozen=True)
class Call:
    """One run-node request: latency of the full answer and its status (0: no answer)."""

    started: float
    seconds: float
    status: int
    error: str = ""


async def run_node(
    session: aiohttp.ClientSession,
    server: Server,
    headers: Headers,
    flow_id: str,
    node_id: str = "v",
    timeout: float = 60.0,
) -> Call:
    """POST /run-node once; time from just before sending to the end of the answer's body."""
    url = f"{server.base_url}{API}/run-node"
    body = {"flowId": flow_id, "nodeId": node_id}
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout), session.post(url, json=body, headers=headers) as resp:
            text = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return Call(started, time.perf_counter() - started, 0, f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    error = "" if status == 202 else text[:200].decode(errors="replace")
    return Call(started, elapsed, status, error)


# --------------------------------------------------------------------------- sampling


@dataclass
class Window:
    """CPU seconds of some processes, and the RSS of the first, over a measured window."""

    pids: Sequence[int]
    interval: float = 0.5
    started: float = 0.0
    ended: float = 0.0
    cpu_start: list[float] = field(default_factory=list)
    cpu_end: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    slices: list[tuple[float, float]] = field(default_factory=list)  # (at, cpu s of pids[0])

    def begin(self) -> None:
        self.started = time.monotonic()
        self.cpu_start = [cpu_seconds([pid]) for pid in self.pids]
        self.slices = [(self.started, self.cpu_start[0])]

    def end(self) -> None:
        self.ended = time.monotonic()
        self.cpu_end = [cpu_seconds([pid]) for pid in self.pids]

    def tick(self) -> None:
        with contextlib.suppress(psutil.Error):
            now = sample(self.pids[0])
            self.rss.append(now.rss)
            self.slices.append((now.at, now.cpu))

    async def run(self, stop: asyncio.Event, max_seconds: float) -> None:
        """Tick every `interval` until `stop` is set or `max_seconds` pass."""
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    @property
    def seconds(self) -> float:
        return max(1e-9, self.ended - self.started)

    def cpu_percent(self, index: int = 0) -> float:
        """Percent of one core used by pids[index] over the window."""
        return 100.0 * (self.cpu_end[index] - self.cpu_start[index]) / self.seconds

    @property
    def rss_max_mb(self) -> float:
        return max(self.rss, default=0) / MiB

    @property
    def rss_mean_mb(self) -> float:
        return (sum(self.rss) / len(self.rss) / MiB) if self.rss else 0.0


def family(server: Server) -> list[int]:
    """The server's pid followed by its children's (the embedded database)."""
    pids = [server.pid]
    with contextlib.suppress(psutil.Error):
        pids += [c.pid for c in psutil.Process(server.pid).children(recursive=True)]
    return pids


def server_db_bench(server: Server) -> tuple[Window, bool]:
    """A Window over [flowboard, its database child (or flowboard again), this process];
    the flag says whether there is a database child (none with an external database.uri)."""
    pids = family(server)
    return Window([server.pid, *(pids[1:2] or [server.pid]), os.getpid()]), len(pids) > 1


# --------------------------------------------------------------------------- output


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (also readable as plain text)."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@contextlib.contextmanager
def timed(label: str, out: Callable[[str], None] = print) -> Iterator[None]:
    """Print how long a block took."""
    started = time.monotonic()
    try:
        yield
    finally:
        out(f"{label}: {time.monotonic() - started:.1f} s")
