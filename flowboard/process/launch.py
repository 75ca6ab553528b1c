"""Exec a program that dies with the process that spawned it (`python -m` this module).

`flowboard.process.spawn` cannot run code in the child before exec; this fresh
interpreter, with no threads inherited, asks the kernel for SIGTERM when its parent
dies (even by kill -9: an orphaned database would keep the data directory locked) and
then becomes the program. PR_SET_PDEATHSIG survives exec.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_ENV = "FLOWBOARD_LAUNCH_PARENT"


def die_with_parent() -> None:
    """SIGTERM this process when the spawning one dies; exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent stops it on exit instead
        return
    expected = os.environ.pop(PARENT_ENV, "")
    if expected and os.getppid() != int(expected):
        sys.exit(1)  # the parent died before the signal was asked for


def main(argv: Sequence[str]) -> None:
    if not argv:
        sys.stderr.write("usage: python -m flowboard.process.launch PROGRAM [ARG ...]\n")
        sys.exit(2)
    die_with_parent()
    os.execv(argv[0], list(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
