"""A newcomer's first hour: --version, where settings come from, tokens while serve runs."""

from __future__ import annotations

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

import pytest

from flowboard import __version__
from flowboard.cli import FIRST_TOKEN_HINT
from flowboard.config import config_path, load_settings
from tests.servers._process import free_port

FLOWBOARD = [sys.executable, "-m", "flowboard"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update({"FLOWBOARD_DATA_DIR": str(tmp_path / "data"), **extra})
    return env


def _flowboard(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWBOARD, *args],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_version() -> None:
    result = subprocess.run([*FLOWBOARD, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == f"flowboard {__version__}"


def test_config_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text("[server]\nport = 1111\n")
    (tmp_path / "env.toml").write_text("[server]\nport = 2222\n")
    (tmp_path / "flag.toml").write_text("[server]\nport = 3333\n")
    env = {"FLOWBOARD_CONFIG": str(tmp_path / "env.toml")}

    def port(explicit: Path | None, environ: dict[str, str]) -> int:
        return load_settings(config_path(explicit, environ), environ=environ).server.port

    assert port(tmp_path / "flag.toml", env) == 3333  # --config beats FLOWBOARD_CONFIG
    assert port(None, env) == 2222  # ... which beats ./config.toml (it was ignored before)
    assert port(None, {}) == 1111
    (tmp_path / "config.toml").unlink()
    assert config_path(None, {}) is None and port(None, {}) == 8080


def test_relative_paths_resolve_against_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "etc" / "flowboard"
    conf.mkdir(parents=True)
    (conf / "config.toml").write_text(
        'data_dir = "state"\n'
        '[providers.veo]\ncredentials_file = "sa.json"\n'
        '[providers.comfyui.workflows.wan]\nfile = "wf/wan.json"\noutput_node = "9"\n'
        '[providers.comfyui.workflows.abs]\nfile = "/srv/abs.json"\noutput_node = "9"\n'
    )
    monkeypatch.chdir(tmp_path)  # elsewhere: the working directory must not matter
    settings = load_settings(Path("etc/flowboard/config.toml"), environ={})
    assert settings.data_path == conf / "state"
    assert settings.providers.veo.credentials_file == str(conf / "sa.json")
    assert settings.providers.comfyui.workflows["wan"].file == str(conf / "wf" / "wan.json")
    assert settings.providers.comfyui.workflows["abs"].file == "/srv/abs.json"
    # A relative path given in the environment means the working directory, as in a shell.
    env_settings = load_settings(
        Path("etc/flowboard/config.toml"), environ={"FLOWBOARD_DATA_DIR": "here"}
    )
    assert env_settings.data_path == tmp_path / "here"


def _call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as resp:
        return json.loads(resp.read())


def _start_serve(tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*FLOWBOARD, "serve", "--port", str(port)],
            env=_env(tmp_path, FLOWBOARD_LOGGING__FORMAT="text"),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            _call(f"http://127.0.0.1:{port}/healthz")
            return proc, log
        except OSError:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(log.read_text()[-3000:])


def test_tokens_while_serve_runs_on_the_embedded_database(tmp_path: Path) -> None:
    port = free_port()
    flows = f"http://127.0.0.1:{port}/api/creative-flowboard/flows"
    proc, log = _start_serve(tmp_path, port)
    run_dir = tmp_path / "data" / "run"
    try:
        assert (run_dir / "database.json").is_file() and (run_dir / "serve.json").is_file()
        started = time.monotonic()
        created = _flowboard(tmp_path, "token", "create", "--org", "acme", "--name", "first")
        assert created.returncode == 0, created.stderr
        assert time.monotonic() - started < 15  # it used to wait 20 s for a second database
        token = created.stdout.strip()
        assert _call(flows, token)["total"] == 0  # the very next request, no restart
        listing = _flowboard(tmp_path, "token", "list")
        assert listing.returncode == 0 and "\tacme\tfirst\t" in listing.stdout
        token_id = created.stderr.split("created ", 1)[1].split()[0]
        assert _flowboard(tmp_path, "token", "revoke", token_id).returncode == 0
        with pytest.raises(urllib.error.HTTPError) as refused:
            _call(flows, token)
        assert refused.value.code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    text = log.read_text()
    assert text.count(FIRST_TOKEN_HINT) == 1  # a fresh data directory with no token: one line
    assert not (run_dir / "database.json").exists() and not (run_dir / "serve.json").exists()
    # With a token in the database, the next start says nothing about it.
    proc, log = _start_serve(tmp_path, port)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert FIRST_TOKEN_HINT not in log.read_text()
