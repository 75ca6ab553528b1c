"""Run `secantusd-py` as a child process when no MongoDB URI is configured.

SecantusDB is GPL: it is only ever started as a separate program, never imported.
In the one-file binary (`make binary`) the same executable is that program when its
first argument is BUNDLED_DATABASE_ARG (`packaging/entry.py` dispatches it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from flowboard import runfiles
from flowboard.process.spawn import ChildProcess, launched, spawn

_LOGGER = logging.getLogger(__name__)
SERVER_PROGRAM = "secantusd-py"
BUNDLED_DATABASE_ARG = "__secantusd__"


class EmbeddedDatabaseError(Exception):
    """The embedded database could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free TCP port on the host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_command() -> list[str]:
    """How to start the database: this binary's hidden entry point when frozen, else the script.

    Either way the database dies with serve: `packaging/entry.py` asks for the
    parent-death signal itself, the script is started through `flowboard.process.launch`.
    """
    if getattr(sys, "frozen", False):
        return [sys.executable, BUNDLED_DATABASE_ARG]
    return launched([find_program(SERVER_PROGRAM)])


def find_program(name: str) -> str:
    """Locate a console script next to this interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside.absolute())
    found = shutil.which(name)
    if found is None:
        raise EmbeddedDatabaseError(f"{name} not found; install the 'secantusdb' package")
    return os.path.abspath(found)


async def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Wait until a TCP connection to host:port succeeds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


@dataclass
class EmbeddedMongo:
    """A `secantusd-py` child process bound to a loopback port."""

    storage_path: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: ChildProcess | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def log_path(self) -> Path:
        """The server's own log (stdout and stderr), beside its data directory."""
        return self.storage_path.parent / "secantusd.log"

    async def start(self, timeout: float) -> None:
        """Start the server and wait until it accepts connections."""
        self.storage_path.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        # posix_spawn, never fork: see flowboard/process/spawn.py for the freeze it avoids.
        self.process = spawn(
            [
                *server_command(),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--storage-path",
                str(self.storage_path),
                "--log-level",
                "WARNING",
            ],
            self.log_path,
        )
        try:
            await self._wait_ready(self.process, timeout)
        except OSError as exc:
            await self.stop()
            raise EmbeddedDatabaseError(
                f"embedded database did not answer on port {self.port} within {timeout:.0f} s"
                f" ({exc}; see {self.log_path})"
            ) from exc
        _LOGGER.info("embedded database up", extra={"port": self.port})
        # Other flowboard commands (token, backup) find the running server through this file.
        entry = runfiles.Published(pid=self.process.pid, port=self.port)
        runfiles.publish(self.storage_path.parent, runfiles.DATABASE_FILE, entry)

    async def _wait_ready(self, process: ChildProcess, timeout: float) -> None:
        """Wait for the port to answer; fail at once if the server exits meanwhile."""
        ready = asyncio.ensure_future(wait_for_port(self.host, self.port, timeout))
        exited = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait((ready, exited), return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            if not ready.done():
                ready.cancel()
        if not ready.done() or ready.cancelled():
            raise OSError(f"exited with status {process.returncode} while starting")
        ready.result()

    async def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server, killing it if it does not exit in time."""
        proc, self.process = self.process, None
        if proc is None:
            return
        runfiles.withdraw(self.storage_path.parent, runfiles.DATABASE_FILE, proc.pid)
        if proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            _LOGGER.warning("embedded database ignored SIGTERM; killing it")
            proc.kill()
            await proc.wait()
