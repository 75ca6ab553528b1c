"""A stand-in for systemd that speaks `sd_notify`'s protocol (Type=notify, WatchdogSec).

It binds a unix datagram socket, starts the service with NOTIFY_SOCKET, WATCHDOG_USEC
and WATCHDOG_PID set as systemd sets them, reads READY=1 / WATCHDOG=1 / STOPPING=1, and
when no WATCHDOG=1 arrives within WatchdogSec it does what systemd does: SIGABRT, then
SIGKILL after a grace (TimeoutAbortSec), then starts the service again (Restart=).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers._process import stop_group


@dataclass
class NotifySupervisor:
    """One service under a watchdog; `states` holds what it said, in order."""

    argv: Sequence[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    watchdog_seconds: float
    abort_grace_seconds: float = 5.0
    states: list[tuple[int, str]] = field(default_factory=list)  # (pid, state)
    restarts: int = 0
    process: subprocess.Popen[bytes] | None = None
    _socket: socket.socket | None = None

    def __post_init__(self) -> None:
        self._path = str(self.cwd / "notify.sock")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self._path)

    def start(self) -> None:
        """Start the service; like systemd, WATCHDOG_PID names the service's own pid."""
        env = {**self.env, "NOTIFY_SOCKET": self._path}
        env["WATCHDOG_USEC"] = str(int(self.watchdog_seconds * 1_000_000))
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                env=env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # WATCHDOG_PID is left out: its pid is known only now, and an absent
        # WATCHDOG_PID means "this process" (sd_watchdog_enabled(3)).

    def receive(self, timeout: float) -> str | None:
        """The next state the service sent within `timeout`, else None."""
        assert self._socket is not None and self.process is not None
        self._socket.settimeout(max(timeout, 0.001))
        try:
            data = self._socket.recv(4096)
        except TimeoutError:
            return None
        state = data.decode()
        self.states.append((self.process.pid, state))
        return state

    def wait_for(self, state: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.receive(deadline - time.monotonic()) == state:
                return True
        return False

    def watch_until_restart(self, timeout: float) -> int:
        """Enforce the watchdog until it fires once; restart and return the old pid."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        last_ping = time.monotonic()
        while time.monotonic() < deadline:
            state = self.receive(0.2)
            if state is not None and "WATCHDOG=1" in state:
                last_ping = time.monotonic()
            if time.monotonic() - last_ping > self.watchdog_seconds:
                return self._abort_and_restart()
        raise AssertionError("the watchdog never fired")

    def _abort_and_restart(self) -> int:
        assert self.process is not None
        old = self.process
        old.send_signal(signal.SIGABRT)
        try:
            old.wait(self.abort_grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(old.pid, signal.SIGKILL)
            old.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(old.pid, signal.SIGKILL)  # KillMode=mixed: the rest of the group
        self.restarts += 1
        self.start()
        return old.pid

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_group(process)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
