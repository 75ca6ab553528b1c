"""`flowboard serve` as a real child process on the test database, for restart tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.servers._process import free_port, stop_group


@dataclass
class ServeProcess:
    """Start, kill -9 and restart the service with the same settings."""

    env: dict[str, str]
    cwd: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flowboard", "serve", "--port", str(self.port)],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() can kill all it started
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(self.log.read_text()[-3000:]) from None
                time.sleep(0.1)
        raise RuntimeError("flowboard serve did not become healthy")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its whole group: a failed test leaves nothing running."""
        process, self.process = self.process, None
        if process is not None:
            stop_group(process)


@pytest.fixture
def serve_process(mongo_server: str, mongo_db_name: str, tmp_path: Path) -> Iterator[ServeProcess]:
    """A stopped service bound to the test database; settings via `serve.env`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update(
        {
            "FLOWBOARD_DATA_DIR": str(tmp_path / "data"),
            "FLOWBOARD_DATABASE__URI": mongo_server,
            "FLOWBOARD_DATABASE__NAME": mongo_db_name,
            "FLOWBOARD_LOGGING__LEVEL": "INFO",
            # Restart tests are about durability; tests/test_auth.py covers authentication.
            "FLOWBOARD_AUTH__ENABLED": "false",
        }
    )
    proc = ServeProcess(env, tmp_path, free_port(), tmp_path / "serve.log")
    yield proc
    proc.stop()


def database_child(
    serve: ServeProcess, timeout: float = 15.0, other_than: int | None = None
) -> psutil.Process:
    """The running `secantusd-py` child of the service (waits for one to appear)."""
    assert serve.process is not None
    parent = psutil.Process(serve.process.pid)
    deadline = time.monotonic() + timeout
    while True:
        for child in parent.children(recursive=True):
            try:
                named = "secantusd" in " ".join(child.cmdline()) and child.pid != other_than
                if named and child.status() != psutil.STATUS_ZOMBIE:
                    return child
            except psutil.NoSuchProcess:
                continue
        if time.monotonic() > deadline:
            raise AssertionError("no embedded database child found")
        time.sleep(0.05)


def database_uri(child: psutil.Process) -> str:
    """The loopback URI of the embedded database, read from its command line."""
    argv = child.cmdline()
    port = argv[argv.index("--port") + 1]
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


@pytest.fixture
def embedded_serve(tmp_path: Path) -> Iterator[ServeProcess]:
    """A stopped service with the embedded database under `tmp_path/data`; set `env` first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update(
        {
            "FLOWBOARD_DATA_DIR": str(tmp_path / "data"),
            "FLOWBOARD_LOGGING__LEVEL": "INFO",
            # Outage tests are about the database; tests/test_auth.py covers authentication.
            "FLOWBOARD_AUTH__ENABLED": "false",
        }
    )
    proc = ServeProcess(env, tmp_path, free_port(), tmp_path / "serve.log")
    yield proc
    proc.stop()
