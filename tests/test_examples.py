"""The flow files in examples/: valid documents, and the local ones run out of the box."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import pytest

from flowboard.config import load_settings
from flowboard.flowdoc import FlowDocument
from flowboard.providers.comfyui_workflow import check_settings, load_workflows
from tests.servers.serve_process import ServeProcess

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FLOWBOARD = [sys.executable, "-m", "flowboard"]


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _run(
    env: dict[str, str], cwd: Path, flow: str, out: Path, examples: Path = EXAMPLES
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWBOARD, "run", str(examples / flow), "--download", str(out)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_example_is_a_flow_document(path: Path) -> None:
    document = FlowDocument.model_validate(json.loads(path.read_text()))
    for node in document.nodes:
        assert node.file is None or (path.parent / node.file).is_file()


def test_comfyui_example_config_passes_the_start_up_check() -> None:
    env = {"FLOWBOARD_PROVIDERS__COMFYUI__URL": "http://127.0.0.1:8188"}
    settings = load_settings(EXAMPLES / "comfyui" / "config.toml", environ=env)
    check_settings(settings)  # raises ConfigError on a bad mapping
    assert "wan_i2v" in load_workflows(settings.providers.comfyui)


def test_local_example_runs_in_process_with_nothing_running(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env["FLOWBOARD_DATA_DIR"] = str(tmp_path / "data")

    result = _run(env, tmp_path, "image-to-video-local.json", tmp_path / "out")

    assert result.returncode == 0, result.stderr
    assert "in-process" in result.stderr
    [video] = (tmp_path / "out").glob("video-*.mp4")
    assert _decoded_frames(video) > 0
    assert f"saved {video}" in result.stdout


def test_chain_example_runs_on_the_running_serve(
    embedded_serve: ServeProcess, tmp_path: Path
) -> None:
    embedded_serve.env["FLOWBOARD_AUTH__ENABLED"] = "true"  # `run` makes its own token
    embedded_serve.start()
    # A deep folder pushes the status line past 80 columns, the width rich assumes when
    # stderr is a pipe: the line must still come out whole.
    examples = tmp_path / ("a-folder-name-long-enough-to-pass-eighty-columns-" * 2) / "examples"
    shutil.copytree(EXAMPLES, examples)

    result = _run(
        embedded_serve.env, tmp_path, "prompt-image-video.json", tmp_path / "out", examples
    )

    assert result.returncode == 0, result.stderr
    [status] = [line for line in result.stderr.splitlines() if line.startswith("running ")]
    assert re.fullmatch(
        rf"running {re.escape(str(examples))}/prompt-image-video\.json on "
        r"flowboard serve \(pid \d+\) \(http://127\.0\.0\.1:\d+\)",
        status,
    ), status
    [still] = (tmp_path / "out").glob("still-*.png")
    [video] = (tmp_path / "out").glob("video-*.mp4")
    assert still.stat().st_size > 0 and _decoded_frames(video) > 0
