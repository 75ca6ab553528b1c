"""Several real `flowboard serve` processes on one replica-set database (`cluster`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers._process import free_port


@dataclass
class ClusterServer:
    """One `flowboard serve` of a cluster: its own port, data directory and log."""

    name: str
    env: dict[str, str]
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "serve.log"

    def start(self, timeout: float = 60.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            # A session of its own: the whole group (its embedded children too) is
            # killed at teardown, whatever the test did.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flowboard", "serve", "--port", str(self.port)],
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become healthy")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it when it does not end in time."""
        proc, self.process = self.process, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        proc.wait()


@dataclass
class Cluster:
    """Servers sharing one database; `start(n)` adds and starts n more.

    shared_media: every server's data_dir/media is a link to one directory, declared
    shared (storage.shared_media); else each keeps its own.
    """

    uri: str
    root: Path
    database: str = field(default_factory=lambda: f"c_{uuid.uuid4().hex[:12]}")
    extra_env: dict[str, str] = field(default_factory=dict)
    shared_media: bool = True
    servers: list[ClusterServer] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
        env.update(
            {
                "FLOWBOARD_DATABASE__URI": self.uri,
                "FLOWBOARD_DATABASE__NAME": self.database,
                "FLOWBOARD_CLUSTER__ENABLED": "true",
                "FLOWBOARD_LOGGING__LEVEL": "INFO",
                "FLOWBOARD_AUTH__ENABLED": "false",
                "FLOWBOARD_STORAGE__SHARED_MEDIA": str(self.shared_media).lower(),
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, count: int) -> list[ClusterServer]:
        added = []
        for _ in range(count):
            name = f"server{len(self.servers) + 1}"
            data = self.root / name / "data"
            if self.shared_media:  # one media directory, as one mount on every server
                (self.root / "media").mkdir(parents=True, exist_ok=True)
                data.mkdir(parents=True, exist_ok=True)
                (data / "media").symlink_to(self.root / "media", target_is_directory=True)
            env = {**self.env(), "FLOWBOARD_DATA_DIR": str(data)}
            server = ClusterServer(name, env, self.root / name)
            self.servers.append(server)  # before start: torn down even if it fails
            server.start()
            added.append(server)
        return added

    def flowboard(self, *args: str) -> str:
        """Run a `flowboard` command on the cluster's database; its standard output."""
        env = {**self.env(), "FLOWBOARD_DATA_DIR": str(self.root / "cli" / "data")}
        self.root.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "flowboard", *args],
            env=env,
            cwd=self.root,
            capture_output=True,
            timeout=60,
            check=True,
        )
        return done.stdout.decode()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def cluster(replica_set: str, tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of no servers yet on the session's replica set (a database of its own)."""
    found = Cluster(replica_set, tmp_path / "cluster")
    try:
        yield found
    finally:
        found.stop()
