"""Files in the data directory that tell other `flowboard` commands what is running.

`flowboard serve` publishes its URL, and the embedded database its port, under
`<data_dir>/run/`, so that `flowboard token`, `run` and `backup` reach the running
service instead of trying to start a second database on a locked data directory.
Each file names the process that wrote it; a file whose process is gone is stale.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

RUN_DIR = "run"
DATABASE_FILE = "database.json"
SERVE_FILE = "serve.json"


@dataclass(frozen=True)
class Published:
    """What a running process published: its pid, and its port or URL."""

    pid: int
    port: int = 0
    url: str = ""


def _path(data_path: Path, name: str) -> Path:
    return data_path / RUN_DIR / name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def publish(data_path: Path, name: str, entry: Published) -> None:
    """Write the file atomically (a reader never sees half of it)."""
    path = _path(data_path, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(asdict(entry)), encoding="utf-8")
    partial.replace(path)


def withdraw(data_path: Path, name: str, pid: int) -> None:
    """Remove the file if `pid` wrote it (another process's file is left alone)."""
    found = read(data_path, name, check_alive=False)
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            _path(data_path, name).unlink()


def read(data_path: Path, name: str, check_alive: bool = True) -> Published | None:
    """The published entry, or None when there is none or its process is gone."""
    try:
        raw = json.loads(_path(data_path, name).read_text(encoding="utf-8"))
        entry = Published(pid=int(raw["pid"]), port=int(raw["port"]), url=str(raw["url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive and not _alive(entry.pid):
        return None
    return entry
