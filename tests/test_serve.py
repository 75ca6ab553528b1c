"""`flowboard serve` as a real process: embedded database, restart, bad config."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web

from flowboard.cli import GC_YOUNG_THRESHOLD, settle_gc
from tests.servers._process import free_port

FLOWBOARD = [sys.executable, "-m", "flowboard"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update({"FLOWBOARD_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def _call(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def _start(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*FLOWBOARD, "serve", "--port", str(port)],
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10  # acceptance: healthy within 10 s
    while time.monotonic() < deadline:
        try:
            if _call(f"http://127.0.0.1:{port}/healthz")["status"] == "ok":
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"not healthy in 10 s: {proc.communicate()[1].decode()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


def _create_token(tmp_path: Path) -> str:
    """`flowboard token create` on the embedded database (the service is not running)."""
    result = subprocess.run(
        [*FLOWBOARD, "token", "create", "--org", "default", "--name", "serve-test"],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def test_embedded_default_keeps_flows_across_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/creative-flowboard"
    token = _create_token(tmp_path)
    proc = _start(tmp_path, port)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            _call(f"{base}/flows")
        assert refused.value.code == 401
        body = {"name": "Keep me", "nodes": [{"id": "a", "type": "prompt"}]}
        flow = _call(f"{base}/flows", body, token)
        assert _call(f"http://127.0.0.1:{port}/readyz")["database"] == "up"
    finally:
        assert _stop(proc) == 0
    proc = _start(tmp_path, port)
    try:
        again = _call(f"{base}/flows/{flow['id']}", token=token)
        assert again == flow
    finally:
        assert _stop(proc) == 0
    assert (tmp_path / "data" / "db").is_dir()


def test_kill_9_does_not_orphan_the_embedded_database(tmp_path: Path) -> None:
    port = free_port()
    token = _create_token(tmp_path)
    proc = _start(tmp_path, port)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("secantusd" in " ".join(c.cmdline()) for c in children)
    flow = _call(f"http://127.0.0.1:{port}/api/creative-flowboard/flows", {"name": "k"}, token)
    proc.kill()
    proc.wait(10)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive  # the database child followed its parent
    proc = _start(tmp_path, port)
    try:
        again = _call(
            f"http://127.0.0.1:{port}/api/creative-flowboard/flows/{flow['id']}", token=token
        )
        assert again["name"] == "k"
    finally:
        assert _stop(proc) == 0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FLOWBOARD_SERVER__MAX_BODY_BYTES": "lots"}, "server.max_body_bytes"),
        ({"FLOWBOARD_SERVER__COLOUR": "red"}, "server.colour"),
        ({"FLOWBOARD_STORAGE__BACKEND": "ftp"}, "storage.backend"),
        (
            {
                "FLOWBOARD_DATABASE__URI": "mongodb://127.0.0.1:1/",
                "FLOWBOARD_DATABASE__STARTUP_TIMEOUT_SECONDS": "1",
            },
            "database.uri",
        ),
    ],
)
def test_bad_config_stops_with_one_clear_line(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = subprocess.run(
        [*FLOWBOARD, "serve", "--port", str(free_port())],
        env=_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert expected in last, stderr


@pytest.mark.parametrize(("setting", "module"), [(None, "uvloop"), ("asyncio", "asyncio")])
def test_serves_on_the_configured_event_loop(
    tmp_path: Path, setting: str | None, module: str
) -> None:
    env = {} if setting is None else {"FLOWBOARD_SERVER__EVENT_LOOP": setting}
    proc = _start(tmp_path, free_port(), **env)
    assert _stop(proc) == 0
    assert proc.stderr is not None
    lines = [json.loads(line) for line in proc.stderr.read().decode().splitlines() if line]
    serving = [line for line in lines if line.get("msg") == "serving"]
    assert len(serving) == 1, lines
    assert serving[0]["event_loop"].split(".")[0] == module


_STARTUP_MODULES = """
import asyncio, json, sys
from aiohttp import web
from flowboard.app import create_app
from flowboard.config import load_settings

async def main() -> None:
    runner = web.AppRunner(create_app(load_settings(None)))
    await runner.setup()  # every start-up context: database, storage, providers, mirror
    try:
        optional = ("google.genai", "google.cloud.firestore", "grpc", "aioboto3")
        print(json.dumps([name for name in optional if name in sys.modules]))
    finally:
        await runner.cleanup()

asyncio.run(main())
"""


def test_backends_not_configured_are_not_loaded(
    tmp_path: Path, mongo_server: str, mongo_db_name: str
) -> None:
    """Veo, Firestore and S3 cost ~90 MB of RSS; a default set-up loads none of them."""
    env = _env(
        tmp_path, FLOWBOARD_DATABASE__URI=mongo_server, FLOWBOARD_DATABASE__NAME=mongo_db_name
    )
    done = subprocess.run(
        [sys.executable, "-c", _STARTUP_MODULES],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


async def test_settle_gc_freezes_the_startup_heap_and_widens_the_young_generation() -> None:
    before = gc.get_threshold()
    try:
        await settle_gc(web.Application())
        assert gc.get_freeze_count() > 10_000  # this interpreter's modules, classes …
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
