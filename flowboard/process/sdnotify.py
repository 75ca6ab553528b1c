"""systemd's notify protocol: READY=1, STOPPING=1 and watchdog pings over $NOTIFY_SOCKET.

One datagram a state to the unix socket systemd names (a leading `@` is Linux's abstract
namespace). Without the variable (not under systemd with Type=notify) nothing is sent.
The protocol is small enough that libsystemd's client is not worth a dependency.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

_LOGGER = logging.getLogger(__name__)


@dataclass
class Notifier:
    """Sends states to the service manager.

    address: the socket, abstract ones starting with a NUL byte.
    watchdog_seconds: systemd's WatchdogSec for this process, None when it has none.
    """

    address: str
    watchdog_seconds: float | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Notifier | None:
        """The notifier systemd asked for, or None when not started with Type=notify."""
        path = environ.get("NOTIFY_SOCKET", "")
        if not path:
            return None
        if path.startswith("@"):
            path = "\0" + path[1:]
        return cls(path, _watchdog_seconds(environ))

    def send(self, state: str) -> None:
        """One datagram; a manager that went away is not our failure."""
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock,
        ):
            sock.setblocking(False)
            sock.sendto(state.encode(), self.address)


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """WatchdogSec as systemd passes it: WATCHDOG_USEC, for WATCHDOG_PID if given."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        _LOGGER.warning("WATCHDOG_USEC is not a number: %r", usec)
        return None
    return seconds if seconds > 0 else None
