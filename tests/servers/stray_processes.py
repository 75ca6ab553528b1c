"""No test leaves a server process behind, whether it passes, fails or times out.

Every process the suite starts inherits SUITE_MARK in its environment (the database a
`flowboard serve` spawns too). After each test, any `flowboard serve` that the test
started and that is still running is killed with everything below it; after the whole
suite, any process still carrying the mark is killed and fails the run, naming it.
`.ci/run` sets the mark itself and checks again once pytest has exited
(`python -m tests.servers.stray_processes`).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import psutil
import pytest

SUITE_MARK = "TEST_SUITE_MARK"  # not FLOWBOARD_*: fixtures drop those
# Set once for the whole run; kept when .ci/run set it already.
MARK = os.environ.setdefault(SUITE_MARK, f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _is_serve(process: psutil.Process) -> bool:
    try:
        argv = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return "serve" in argv and any("flowboard" in arg for arg in argv)


def kill_tree(process: psutil.Process) -> None:
    """SIGKILL a process and every process below it."""
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(family, timeout=10)


def marked_processes(mark: str) -> list[psutil.Process]:
    """Running processes whose environment carries `mark`, but this one and its parents.

    The parents (`timeout`, make, .ci/run's shell) may carry the mark: it was set above.
    """
    me = psutil.Process()
    ours = {me.pid, *(parent.pid for parent in me.parents())}
    found = []
    for process in psutil.process_iter():
        if process.pid in ours:
            continue
        try:
            if process.environ().get(SUITE_MARK) == mark and process.status() != "zombie":
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(autouse=True)
def _no_stray_serve() -> Iterator[None]:
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    yield
    for child in me.children(recursive=True):
        if child.pid not in before and _is_serve(child):
            kill_tree(child)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    strays = marked_processes(MARK)
    if not strays:
        return
    lines = []
    for process in strays:
        try:
            lines.append(f"  pid {process.pid}: {' '.join(process.cmdline())}")
        except psutil.NoSuchProcess:
            continue
        kill_tree(process)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and lines:
        reporter.ensure_newline()
        reporter.write_line("processes the suite left running (now killed):", red=True)
        for line in lines:
            reporter.write_line(line, red=True)
    if lines:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def main() -> int:
    """For .ci/run, after pytest: name and kill what is left with the mark; 1 if any."""
    strays = marked_processes(MARK)
    for process in strays:
        try:
            sys.stderr.write(f"left running: pid {process.pid}: {' '.join(process.cmdline())}\n")
        except psutil.NoSuchProcess:
            continue
        kill_tree(process)
    return 1 if strays else 0


if __name__ == "__main__":
    sys.exit(main())
