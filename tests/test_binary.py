"""The one-file executable: built, copied alone to an empty folder, run with no Python."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import psutil
import pytest

from tests.servers._process import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/flowboard built from this checkout (scripts/build-binary, ~4 min on 2 cores).

    $FLOWBOARD_TEST_BINARY names one built already (from this same checkout) instead.
    """
    given = os.environ.get("FLOWBOARD_TEST_BINARY")
    if given:
        return Path(given).resolve()
    if importlib.util.find_spec("PyInstaller") is None:
        pytest.skip("PyInstaller is not installed: pip install -e '.[build]' (.ci/run does)")
    out = tmp_path_factory.mktemp("binary")
    env = {**os.environ, "PY": sys.executable, "DIST": str(out / "dist")}
    env["WORK"] = str(out / "work")
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-binary")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out / "dist" / "flowboard"


@pytest.fixture
def vm(binary: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An empty folder holding only the binary, and an environment with no Python at all."""
    folder = tmp_path / "vm"
    (folder / "bin").mkdir(parents=True)  # PATH: an empty folder, so no python, no venv
    shutil.copy2(binary, folder / "flowboard")
    env = {"HOME": str(folder), "PATH": str(folder / "bin"), "LANG": "C.UTF-8"}
    assert shutil.which("python3", path=env["PATH"]) is None
    assert shutil.which("python", path=env["PATH"]) is None
    return folder, env


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert process.poll() is None, "the binary's serve exited"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no /healthz within {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_binary_alone_serves_and_runs_the_local_example(
    vm: tuple[Path, dict[str, str]],
) -> None:
    folder, env = vm
    version = subprocess.run(
        ["./flowboard", "--version"], cwd=folder, env=env, capture_output=True, timeout=120
    )
    assert version.returncode == 0 and version.stdout.startswith(b"flowboard ")
    port = free_port()
    with (folder / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            ["./flowboard", "serve", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        seconds = _wait_healthy(f"http://127.0.0.1:{port}", serve, timeout=180)
        sys.stderr.write(f"binary cold start to /healthz: {seconds:.1f} s\n")
        # The embedded database is this same file, run as its own process.
        children = psutil.Process(serve.pid).children(recursive=True)
        assert any("__secantusd__" in " ".join(c.cmdline()) for c in children)
        for name in ("image-to-video-local.json", "sample.jpg"):
            shutil.copy(EXAMPLES / name, folder / name)

        result = subprocess.run(
            ["./flowboard", "run", "image-to-video-local.json", "--download", "out"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

        assert result.returncode == 0, result.stderr + (folder / "serve.log").read_text()[-3000:]
        assert "flowboard serve (pid" in result.stderr  # the running service, auth on
        [video] = (folder / "out").glob("video-*.mp4")
        with av.open(str(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0
    finally:
        _stop(serve)
