"""Start a child process without running Python in a forked copy of this process.

`serve` has threads (renders, decoders, the database driver) that may hold locks at any
moment. `fork()` copies those locks held and no thread to release them, so any Python
(a garbage collection, an after-fork hook) or C library clean-up run in the copy before
it execs can deadlock — uvloop's spawn did exactly that. `posix_spawn` (glibc: a vfork
clone that only execs) runs nothing of ours in the child. What must happen in the child
before the program runs (the parent-death signal) is done after exec by
`flowboard.process.launch`, a fresh interpreter with no inherited threads.

The child is reaped through a pidfd on the event loop, so no thread waits on it and no
child watcher of the loop is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from flowboard.process import launch

# Python ignores these (SIGPIPE) or may; a child starts with the default action, as
# subprocess's restore_signals does.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
UNKNOWN_STATUS = 255


class ChildProcess:
    """A spawned child: its pid, exit status once reaped, signals, an awaitable wait."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited: asyncio.Future[int] | None = None

    def _reap(self, flags: int = os.WNOHANG) -> bool:
        """Collect the exit status if the child has exited; True once it has."""
        if self.returncode is not None:
            return True
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped by someone else: its status is lost
            self.returncode = UNKNOWN_STATUS
            return True
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        return True

    async def wait(self) -> int:
        """Wait until the child exits; its exit code (negative: killed by that signal)."""
        if self._reap():
            assert self.returncode is not None
            return self.returncode
        if self._exited is None:
            self._exited = asyncio.get_running_loop().create_future()
            self._watch(self._exited)
        return await asyncio.shield(self._exited)

    def _watch(self, exited: asyncio.Future[int]) -> None:
        loop = exited.get_loop()
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfd (Linux < 5.3): a thread waits instead
            waiting = loop.run_in_executor(None, self._reap, 0)
            waiting.add_done_callback(lambda _: self._settle(exited))
            return

        def readable() -> None:
            if self._reap():
                loop.remove_reader(pidfd)
                os.close(pidfd)
                self._settle(exited)

        loop.add_reader(pidfd, readable)
        readable()  # it may have exited between the first reap and the pidfd

    def _settle(self, exited: asyncio.Future[int]) -> None:
        if self.returncode is not None and not exited.done():
            exited.set_result(self.returncode)

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def launched(argv: Sequence[str]) -> list[str]:
    """`argv` started through the launcher (which execs it with the parent-death signal)."""
    return [sys.executable, "-m", launch.__name__, *argv]


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
) -> ChildProcess:
    """Start `argv[0]` (an absolute path) with stdout and stderr appended to `log_path`.

    The child starts with no signal blocked and the default action for the signals
    Python ignores, whatever this process blocks or ignores.
    """
    environment = dict(os.environ if env is None else env)
    environment[launch.PARENT_ENV] = str(os.getpid())
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    pid = os.posix_spawn(
        argv[0],
        list(argv),
        environment,
        file_actions=file_actions,
        setsigmask=(),
        setsigdef=_DEFAULT_SIGNALS,
    )
    return ChildProcess(pid)
