"""Shared helpers for the benches: a `flowboard serve` subprocess, process sampling, percentiles."""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from flowboard.config import Settings

REPO = Path(__file__).resolve().parent.parent
KiB = 1024
MiB = 1 << 20


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def raise_nofile() -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to the hard limit; return the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return int(soft)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) by linear interpolation between closest ranks; nan if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class ProcSample:
    """RSS (bytes) and user+system CPU seconds of one process at one instant."""

    at: float
    rss: int
    cpu: float


def sample(pid: int) -> ProcSample:
    """Sample one process (not its children)."""
    proc = psutil.Process(pid)
    with proc.oneshot():
        times = proc.cpu_times()
        rss = int(proc.memory_info().rss)
    return ProcSample(time.monotonic(), rss, float(times.user + times.system))


def cpu_seconds(pids: Sequence[int]) -> float:
    """Summed user+system CPU seconds of the given processes (vanished ones count 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += float(times.user + times.system)
    return total


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the bench dies (Linux), own session otherwise."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    """A running `flowboard serve` child."""

    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _wait_healthy(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"{server.base_url}/healthz"
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"flowboard serve exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1.0) as resp,
        ):
            if resp.status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"flowboard serve not healthy after {timeout:.0f} s")
        time.sleep(0.1)


def stop_server(server: Server, grace: float = 30.0) -> None:
    """SIGTERM the server (it stops its database child), then kill whatever of it is left."""
    proc = server.proc
    try:
        family = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.Error:
        family = []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)  # the session we created for it
            proc.wait(10)
    for pid in family:  # e.g. secantusd-py, should it have outlived its parent
        with contextlib.suppress(psutil.Error):
            child = psutil.Process(pid)
            child.terminate()
            child.wait(5)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


@contextlib.contextmanager
def flowboard_server(
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 60.0,
    keep_data: bool = False,
) -> Iterator[Server]:
    """Run `flowboard serve` on a free port: embedded database, temp data dir, WARNING logs,
    authentication off (where the service has it); `env` adds FLOWBOARD_* overrides."""
    data_dir = Path(tempfile.mkdtemp(prefix="flowboard-bench-"))
    log_path = data_dir / "server.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    child_env.update(
        {
            "FLOWBOARD_DATA_DIR": str(data_dir / "data"),
            "FLOWBOARD_LOGGING__LEVEL": "WARNING",
            "FLOWBOARD_DATABASE__URI": "",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if "auth" in Settings.model_fields:  # the benches measure the service, not the tokens
        child_env["FLOWBOARD_AUTH__ENABLED"] = "false"
    if "ratelimit" in Settings.model_fields:  # one bench token sends far past a client's limit
        child_env["FLOWBOARD_RATELIMIT__ENABLED"] = "false"
    child_env.update(env or {})
    port = free_port()
    cmd = [sys.executable, "-m", "flowboard", "--config", str(REPO / "config.toml")]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port)]
    server: Server | None = None
    try:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # only setsid + prctl, no locks taken
            )
        server = Server(proc, port, data_dir, log_path)
        _wait_healthy(server, startup_timeout)
        yield server
    finally:
        if server is not None:
            stop_server(server)
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class RssSampler:
    """Sample a process's peak RSS from a thread, so a busy event loop cannot hide a peak.

    pid: the process to watch; None is this one.
    """

    pid: int | None = None
    interval: float = 0.005
    peak: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        process = psutil.Process(self.pid)
        while not self._stop.is_set():
            self.peak = max(self.peak, int(process.memory_info().rss))
            self.samples += 1
            self._stop.wait(self.interval)
        self.peak = max(self.peak, int(process.memory_info().rss))
