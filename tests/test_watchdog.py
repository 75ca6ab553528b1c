"""A stuck event loop is never silent and never immortal (issue: the freeze).

A plugin provider blocks the loop in time.sleep, as any bug that wedges it would. The
watchdog logs every thread's stack, systemd's watchdog protocol (a stand-in that speaks
it) restarts the service, SIGTERM still ends it within its deadline, and so does the
watchdog's own deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from flowboard.process.sdnotify import Notifier
from flowboard.process.watchdog import LoopWatchdog, WatchdogPolicy
from tests.servers._process import free_port
from tests.servers._sd_notify import NotifySupervisor
from tests.servers.serve_process import ServeProcess, database_child

API = "/api/creative-flowboard"
REPO = Path(__file__).resolve().parent.parent
WEDGE = {
    "FLOWBOARD_PLUGINS": "tests.wedge_plugin",
    "FLOWBOARD_WATCHDOG__STALL_SECONDS": "1",
}


def _call(url: str, body: dict[str, Any] | None = None, timeout: float = 5) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def _wedge(url: str) -> None:
    """Run an image_gen node on the wedging provider; the loop blocks once it starts."""
    node = {"id": "w", "type": "image_gen", "data": {"prompt": "stuck", "provider": "wedge"}}
    flow = _call(f"{url}{API}/flows", {"name": "wedge", "nodes": [node]})
    with contextlib.suppress(OSError):  # the answer may not leave before the loop blocks
        _call(f"{url}{API}/run-node", {"flowId": flow["id"], "nodeId": "w"}, timeout=2)


def _wedged_serve(serve: ServeProcess, **env: str) -> None:
    serve.env.update({**WEDGE, "PYTHONPATH": str(REPO), **env})
    serve.start()


def _wait_exit(serve: ServeProcess, timeout: float) -> tuple[int, float]:
    assert serve.process is not None
    started = time.monotonic()
    code = serve.process.wait(timeout)
    return code, time.monotonic() - started


def test_watchdog_logs_every_stack_and_systemd_restarts_the_service(
    mongo_server: str, mongo_db_name: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update(
        {
            **WEDGE,
            "PYTHONPATH": str(REPO),
            "FLOWBOARD_DATA_DIR": str(tmp_path / "data"),
            "FLOWBOARD_DATABASE__URI": mongo_server,
            "FLOWBOARD_DATABASE__NAME": mongo_db_name,
            "FLOWBOARD_AUTH__ENABLED": "false",
            "FLOWBOARD_WATCHDOG__EXIT_AFTER_SECONDS": "0",  # systemd's watchdog acts
            "FLOWBOARD_PROVIDERS__WEDGE__ONCE_FILE": str(tmp_path / "wedged-once"),
        }
    )
    port = free_port()
    argv = [sys.executable, "-m", "flowboard", "serve", "--port", str(port)]
    log = tmp_path / "serve.log"
    supervisor = NotifySupervisor(argv, env, tmp_path, log, watchdog_seconds=3.0)
    try:
        supervisor.start()
        assert supervisor.wait_for("READY=1", timeout=60), log.read_text()[-3000:]
        assert supervisor.wait_for("WATCHDOG=1", timeout=5)  # pings while healthy
        _wedge(f"http://127.0.0.1:{port}")
        wedged_pid = supervisor.watch_until_restart(timeout=60)
        assert supervisor.wait_for("READY=1", timeout=60), log.read_text()[-3000:]
        assert supervisor.process is not None and supervisor.process.pid != wedged_pid
        assert _call(f"http://127.0.0.1:{port}/readyz")["status"] == "ok"
    finally:
        supervisor.stop()
    text = log.read_text()
    assert "event loop has not run for" in text
    dump = text[text.index("event loop has not run for") :]
    # Every thread, and the stuck one caught in the very call that blocks it.
    assert "thread MainThread" in dump and "thread flowboard-watchdog" in dump
    assert "wedge_plugin.py" in dump and "time.sleep" in dump
    assert supervisor.restarts == 1


def test_sigterm_ends_a_wedged_serve_within_its_stop_timeout(
    embedded_serve: ServeProcess,
) -> None:
    _wedged_serve(
        embedded_serve,
        FLOWBOARD_SERVER__STOP_TIMEOUT_SECONDS="3",
        FLOWBOARD_WATCHDOG__EXIT_AFTER_SECONDS="0",
    )
    database = database_child(embedded_serve)
    _wedge(embedded_serve.url)
    time.sleep(1.5)  # the loop is stuck by now: the stall is logged after 1 s
    assert embedded_serve.process is not None
    embedded_serve.process.send_signal(signal.SIGTERM)
    code, took = _wait_exit(embedded_serve, timeout=20)
    assert code == 1
    assert 3.0 <= took < 8.0, took
    text = embedded_serve.log.read_text()
    assert "still running 3 s after SIGTERM; exiting now" in text
    assert "wedge_plugin.py" in text[text.index("exiting now") :]
    # The embedded database follows its parent (its parent-death signal).
    _gone, alive = psutil.wait_procs([database], timeout=30)
    assert not alive


def test_a_second_sigterm_ends_a_wedged_serve_at_once(serve_process: ServeProcess) -> None:
    _wedged_serve(serve_process, FLOWBOARD_WATCHDOG__EXIT_AFTER_SECONDS="0")
    _wedge(serve_process.url)
    time.sleep(1.5)
    assert serve_process.process is not None
    serve_process.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert serve_process.process.poll() is None  # the default 45 s deadline is far
    serve_process.process.send_signal(signal.SIGTERM)
    code, took = _wait_exit(serve_process, timeout=10)
    assert code == 1 and took < 5.0, took
    assert "second stop signal (SIGTERM); exiting now" in serve_process.log.read_text()


def test_the_watchdog_ends_a_serve_whose_loop_stays_stuck(serve_process: ServeProcess) -> None:
    _wedged_serve(serve_process, FLOWBOARD_WATCHDOG__EXIT_AFTER_SECONDS="3")
    _wedge(serve_process.url)
    code, took = _wait_exit(serve_process, timeout=30)
    assert code == 1 and took < 25.0, took
    text = serve_process.log.read_text()
    assert "event loop has not run for 3 s; exiting now" in text, text[-3000:]


async def test_a_stall_is_logged_once_with_the_stuck_stack_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watchdog = LoopWatchdog(WatchdogPolicy(stall_seconds=0.4, exit_after_seconds=0))
    watchdog.start()
    try:
        await asyncio.sleep(0.3)
        with caplog.at_level(logging.WARNING, "flowboard.process.watchdog"):
            time.sleep(1.5)  # noqa: ASYNC251 - the point: a blocked loop
            await asyncio.sleep(0.5)
    finally:
        await watchdog.stop()
    stalls = [r for r in caplog.records if "has not run" in r.getMessage()]
    assert len(stalls) == 1 and stalls[0].levelno == logging.ERROR
    assert "test_a_stall_is_logged_once" in stalls[0].getMessage()
    assert any("running again after a" in r.getMessage() for r in caplog.records)


def test_notifier_reads_systemds_variables(tmp_path: Path) -> None:
    assert Notifier.from_environ({}) is None
    abstract = Notifier.from_environ({"NOTIFY_SOCKET": "@flowboard/notify"})
    assert abstract is not None and abstract.address == "\0flowboard/notify"
    assert abstract.watchdog_seconds is None
    own = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ""}
    assert Notifier.from_environ(own) == Notifier("/run/n", 30.0)
    other = {**own, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_environ(other) == Notifier("/run/n", None)
