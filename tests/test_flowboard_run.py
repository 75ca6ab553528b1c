"""`flowboard run FLOW.json` as a subprocess against a real `flowboard serve` (auth on)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.servers.serve_process import ServeProcess

FLOWBOARD = [sys.executable, "-m", "flowboard"]
API = "/api/creative-flowboard"


@pytest.fixture
def served(serve_process: ServeProcess) -> tuple[ServeProcess, str]:
    """A running service with auth on, and a token made by `flowboard token create`."""
    serve_process.env["FLOWBOARD_AUTH__ENABLED"] = "true"
    serve_process.start()
    made = subprocess.run(
        [*FLOWBOARD, "token", "create", "--org", "default", "--name", "run-tests"],
        env=serve_process.env,
        cwd=serve_process.cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return serve_process, made.stdout.strip()


def _flow_file(tmp_path: Path, flow_id: str, video: dict[str, Any]) -> Path:
    document = {
        "format": "flowboard.flow/v1",
        "id": flow_id,
        "name": flow_id,
        "nodes": [{"id": "video", "type": "video_gen", "data": video}],
        "edges": [],
    }
    path = tmp_path / f"{flow_id}.json"
    path.write_text(json.dumps(document))
    return path


def _get(serve: ServeProcess, token: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{serve.url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        body: dict[str, Any] = json.load(resp)
        return body


def _executions(serve: ServeProcess, token: str, flow_id: str) -> list[dict[str, Any]]:
    """The flow's executions ([] until `flowboard run` has imported the flow)."""
    try:
        items: list[dict[str, Any]] = _get(serve, token, f"{API}/flows/{flow_id}/executions")[
            "items"
        ]
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        return []
    return items


def _run_args(serve: ServeProcess, token: str, flow: Path) -> list[str]:
    return [*FLOWBOARD, "run", str(flow), "--server", serve.url, "--token", token]


def test_a_failing_node_exits_non_zero_with_its_code_and_message(
    served: tuple[ServeProcess, str], tmp_path: Path
) -> None:
    serve, token = served
    # No prompt of its own and nothing wired in: the core fails the node input_missing.
    flow = _flow_file(tmp_path, "run-fails", {"provider": "local", "durationSeconds": 1})

    result = subprocess.run(
        _run_args(serve, token, flow),
        env=serve.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )

    assert result.returncode == 1, result.stderr
    [execution] = _executions(serve, token, "run-fails")
    error = execution["tasks"]["video"]["error"]
    assert error["code"] == "input_missing"
    assert f"node video FAILED: {error['code']}: {error['message']}" in result.stderr


def test_sigint_cancels_the_execution_on_the_server(
    served: tuple[ServeProcess, str], tmp_path: Path
) -> None:
    serve, token = served
    long_render = {"prompt": "a long take", "provider": "local", "durationSeconds": 60,
                   "resolution": "1080p", "fps": 60}  # fmt: skip
    flow = _flow_file(tmp_path, "run-interrupted", long_render)
    runner = subprocess.Popen(
        _run_args(serve, token, flow),
        env=serve.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        items: list[dict[str, Any]] = []
        while not items or items[0]["tasks"]["video"]["status"] != "PROCESSING":
            assert time.monotonic() < deadline and runner.poll() is None, runner.stderr
            time.sleep(0.2)
            items = _executions(serve, token, "run-interrupted")
        runner.send_signal(signal.SIGINT)
        _, stderr = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()

    assert runner.returncode == 130, stderr
    execution = _get(serve, token, f"{API}/executions/{items[0]['id']}")
    assert execution["status"] == "CANCELLED", execution
    assert execution["tasks"]["video"]["status"] == "CANCELLED"
