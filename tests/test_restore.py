"""`flowboard restore` is all or nothing: a damaged backup is refused before anything is written."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.servers._process import ServerProcess, free_port, program

FLOWBOARD = [sys.executable, "-m", "flowboard"]
MEDIA = {"org/a/video.mp4": os.urandom(30_000), "org/a/poster.jpg": os.urandom(5_000)}
Damage = Callable[[Path], None]


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update({"FLOWBOARD_LOGGING__FORMAT": "text", **settings})
    return env


def _flowboard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLOWBOARD, *args], env=env, capture_output=True, text=True, timeout=120)


def _tree_hash(root: Path) -> str:
    """One hash of every path under root, its kind and its bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<dir>")
    return digest.hexdigest()


def _records(uri: str, name: str) -> dict[str, list[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    try:
        db = client[name]
        return {c: list(db[c].find({}).sort("_id", 1)) for c in sorted(db.list_collection_names())}
    finally:
        client.close()


def _seed(uri: str, name: str, data_dir: Path) -> None:
    """A flow of ~48 KB, its two assets and their media files."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        db = client[name]
        db.flows.insert_one({"_id": "f1", "orgId": "org", "notes": "x" * 48_000})
        db.flow_parts.insert_many([{"_id": f"p{i}", "flowId": "f1"} for i in range(5)])
        storage = {"key": "org/a/video.mp4", "contentType": "video/mp4"}
        poster = {"key": "org/a/poster.jpg", "contentType": "image/jpeg"}
        db.assets.insert_one({"_id": "a1", "orgId": "org", "storage": storage, "poster": poster})
    finally:
        client.close()
    for key, data in MEDIA.items():
        (data_dir / "media" / key).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / "media" / key).write_bytes(data)


def _truncate(name: str, keep: int) -> Damage:
    def damage(backup: Path) -> None:
        path = backup / name
        path.write_bytes(path.read_bytes()[:keep])

    return damage


def _flip(name: str) -> Damage:
    def damage(backup: Path) -> None:
        data = bytearray((backup / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (backup / name).write_bytes(bytes(data))

    return damage


def _remove(name: str) -> Damage:
    return lambda backup: (backup / name).unlink()


DAMAGES: list[tuple[Damage, str]] = [
    (_truncate("db/flows.bson", 12 * 1024), "db/flows.bson: truncated (12 of 46 KB)"),
    (_flip("db/flows.bson"), "db/flows.bson: damaged (SHA-256 differs from the manifest)"),
    (_flip("db/assets.bson"), "db/assets.bson: damaged (SHA-256 differs from the manifest)"),
    (_remove("media/org/a/poster.jpg"), "media/org/a/poster.jpg: missing"),
    (_flip("media/org/a/video.mp4"), "media/org/a/video.mp4: damaged (SHA-256 differs"),
    (_truncate("manifest.json", 100), "manifest.json: unreadable or truncated ("),
]


@pytest.fixture
def good_backup(mongo_server: str, mongo_db_name: str, tmp_path: Path) -> Path:
    source = tmp_path / "source"
    _seed(mongo_server, mongo_db_name, source)
    env = _env(
        FLOWBOARD_DATA_DIR=str(source),
        FLOWBOARD_DATABASE__URI=mongo_server,
        FLOWBOARD_DATABASE__NAME=mongo_db_name,
    )
    result = _flowboard(env, "backup", str(tmp_path / "backup"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "backup"


def test_a_damaged_backup_changes_nothing_and_the_good_one_then_restores(
    good_backup: Path, mongo_server: str, mongo_db_name: str, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    (target / "media").mkdir(parents=True)
    (target / "keep.txt").write_text("the operator's notes")
    before = _tree_hash(target)
    env = _env(FLOWBOARD_DATA_DIR=str(target))  # the embedded database: staged, swapped in

    for index, (damage, message) in enumerate(DAMAGES):
        damaged = tmp_path / f"damaged-{index}"
        shutil.copytree(good_backup, damaged)
        damage(damaged)
        result = _flowboard(env, "restore", str(damaged))
        assert result.returncode != 0
        assert result.stderr.startswith(f"flowboard restore: {message}"), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert _tree_hash(target) == before, message

    result = _flowboard(env, "restore", str(good_backup))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["db", "keep.txt", "media"]
    for key, data in MEDIA.items():
        assert (target / "media" / key).read_bytes() == data
    port = free_port()
    argv = [program("secantusd-py"), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--storage-path", str(target / "db"), "--log-level", "WARNING"]
    server = ServerProcess(argv, port, tmp_path / "restored.log").start()
    try:
        restored = _records(f"mongodb://127.0.0.1:{port}/?directConnection=true", "flowboard")
    finally:
        server.stop()
    (audit,) = restored.pop("audit")  # the restore itself, recorded in what it restored
    assert audit["action"] == "backup.restored" and audit["target"] == str(good_backup)
    counts = {name: n for name, n in audit["details"]["collections"].items() if n}
    assert counts == {"assets": 1, "flow_parts": 5, "flows": 1}
    assert restored == _records(mongo_server, mongo_db_name)
    assert [len(restored[c]) for c in ("assets", "flow_parts", "flows")] == [1, 5, 1]


def test_command_errors_name_the_command_not_start_up(tmp_path: Path) -> None:
    unreachable = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    env = _env(
        FLOWBOARD_DATA_DIR=str(tmp_path / "data"),
        FLOWBOARD_DATABASE__URI=unreachable,
        FLOWBOARD_DATABASE__STARTUP_TIMEOUT_SECONDS="1",
    )
    for args in (("token", "list"), ("budget", "show", "--org", "o"), ("backup", "b")):
        result = _flowboard(env, *args)
        assert result.returncode != 0
        assert result.stderr.startswith(f"flowboard {args[0]}: "), result.stderr
        assert "start-up failed" not in result.stderr
    result = _flowboard(env, "restore", str(tmp_path / "nothing"))
    assert result.stderr == "flowboard restore: manifest.json: missing (not a complete backup)\n"
