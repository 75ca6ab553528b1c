"""The one-file binary: its size, and its cold start-up time to /healthz.

Usage: python bench/binary_start.py [dist/flowboard] [rounds]

Each round copies nothing but runs the binary on a fresh data directory (a new embedded
database too) with an environment whose PATH holds no Python, and times from the exec
to the first 200 of /healthz (127.0.0.1 only). PASS when the median is under 30 s.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LIMIT_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cold_start(binary: Path) -> float:
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "bin"
        empty.mkdir()
        env = {"HOME": folder, "PATH": str(empty), "LANG": "C.UTF-8"}
        port = _free_port()
        start = time.monotonic()
        process = subprocess.Popen(
            [str(binary), "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while time.monotonic() - start < 180:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                        return time.monotonic() - start
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError("no /healthz within 180 s")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def main() -> int:
    binary = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/flowboard").resolve()
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size = binary.stat().st_size
    times = [cold_start(binary) for _ in range(rounds)]
    median = statistics.median(times)
    load = os.getloadavg()
    print(f"binary {binary}: {size / 2**20:.1f} MiB")
    print("cold start to /healthz (s): " + ", ".join(f"{t:.2f}" for t in times))
    print(f"median {median:.2f} s over {rounds} rounds; load average {load[0]:.2f}")
    ok = median < LIMIT_SECONDS
    print(f"{'PASS' if ok else 'FAIL'}: median cold start {median:.2f} s < {LIMIT_SECONDS:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
