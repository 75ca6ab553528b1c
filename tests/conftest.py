"""Shared test set-up: every module in tests/servers/ is a fixture plugin."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(
    f"tests.servers.{path.stem}"
    for path in (Path(__file__).parent / "servers").glob("*.py")
    if not path.stem.startswith("_")
)
