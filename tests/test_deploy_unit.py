"""deploy/flowboard.service: what docs/deploy.md promises of it, and systemd accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from flowboard.config import load_settings

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "flowboard.service"
DATABASE_STOP_SECONDS = 10.0  # EmbeddedMongo.stop's default timeout


def _service_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#") and "=" in line and section == "Service":
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_runs_sandboxed_with_a_grace_longer_than_the_servers() -> None:
    service = _service_settings()
    grace = load_settings(None, environ={}).server.shutdown_grace_seconds
    stop = float(service["TimeoutStopSec"][0])
    assert stop > grace + DATABASE_STOP_SECONDS
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["flowboard"]
    assert service["StateDirectory"] == ["flowboard"]
    assert "FLOWBOARD_DATA_DIR=/var/lib/flowboard" in service["Environment"]
    assert service["EnvironmentFile"][0].endswith("/etc/flowboard/flowboard.env")
    assert service["ProtectSystem"] == ["strict"] and service["NoNewPrivileges"] == ["yes"]
    assert service["ExecStart"][0].split()[1:] == ["serve"]


def test_unit_uses_the_watchdog_and_outlasts_serves_own_stop_deadline() -> None:
    service = _service_settings()
    settings = load_settings(None, environ={})
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    watchdog = float(service["WatchdogSec"][0])
    # The loop pings at least three times per WatchdogSec; serve logs a stall before it.
    assert settings.watchdog.stall_seconds < watchdog
    assert float(service["TimeoutStopSec"][0]) > settings.server.stop_timeout_seconds


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    program = tmp_path / "flowboard"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    unit = tmp_path / "flowboard.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/flowboard", str(program)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "flowboard.service" not in result.stderr, result.stderr  # no warning about it
