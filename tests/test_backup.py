"""`flowboard backup` while serve runs and jobs complete; `flowboard restore` into an empty dir."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from flowboard import runfiles
from flowboard.commands.backup import media_keys
from tests.servers._process import ServerProcess, free_port, program
from tests.servers.serve_process import ServeProcess

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FLOWBOARD = [sys.executable, "-m", "flowboard"]
Records = dict[str, list[dict[str, Any]]]


def _flowboard(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLOWBOARD, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _flow_files(folder: Path, count: int) -> list[Path]:
    """Copies of the local example under other flow ids (3 s videos: still running at once)."""
    shutil.copy(EXAMPLES / "sample.jpg", folder / "sample.jpg")
    document = json.loads((EXAMPLES / "image-to-video-local.json").read_text())
    paths = []
    for index in range(count):
        document["id"] = f"backup-{index}"
        document["nodes"][1]["data"].update(durationSeconds=3, seed=index)
        path = folder / f"flow-{index}.json"
        path.write_text(json.dumps(document))
        paths.append(path)
    return paths


def _records(uri: str) -> Records:
    """Every document of every collection, by collection, in _id order."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    try:
        db = client["flowboard"]
        return {
            name: list(db[name].find({}).sort("_id", 1))
            for name in sorted(db.list_collection_names())
        }
    finally:
        client.close()


def _media(root: Path) -> dict[str, str]:
    """SHA-256 of every stored file, by its path under the media root."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _restored_records(data_dir: Path, log: Path) -> Records:
    """Read a restored data directory through its own database server."""
    port = free_port()
    argv = [program("secantusd-py"), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--storage-path", str(data_dir / "db"), "--log-level", "WARNING"]
    server = ServerProcess(argv, port, log).start()
    try:
        return _records(f"mongodb://127.0.0.1:{port}/?directConnection=true")
    finally:
        server.stop()


def _without_restore_records(records: Records) -> Records:
    """The records, less the audit record each restore adds to what it restored."""
    audit = [r for r in records.get("audit", []) if r["action"] != "backup.restored"]
    assert len(audit) == len(records.get("audit", [])) - 1, "the restore was not audited"
    return {**records, "audit": audit}


def _wait_for_assets(uri: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not _records(uri).get("assets"):
        assert time.monotonic() < deadline, "no job started"
        time.sleep(0.1)


def test_backup_while_serving_then_restore_gives_back_everything(
    embedded_serve: ServeProcess, tmp_path: Path
) -> None:
    embedded_serve.start()
    env, work = embedded_serve.env, tmp_path / "work"
    work.mkdir()
    database = runfiles.read(tmp_path / "data", runfiles.DATABASE_FILE)
    assert database is not None
    uri = f"mongodb://127.0.0.1:{database.port}/?directConnection=true"
    runners = [
        subprocess.Popen([*FLOWBOARD, "run", str(flow)], env=env, cwd=work)
        for flow in _flow_files(work, 3)
    ]
    _wait_for_assets(uri)
    during = _flowboard(env, work, "backup", str(tmp_path / "during"))  # jobs still running
    assert during.returncode == 0, during.stderr
    assert [runner.wait(120) for runner in runners] == [0, 0, 0]
    after = _flowboard(env, work, "backup", str(tmp_path / "after"))  # serve still running
    assert after.returncode == 0, after.stderr
    original, original_media = _records(uri), _media(tmp_path / "data" / "media")

    restored_env = {**env, "FLOWBOARD_DATA_DIR": str(tmp_path / "restored")}
    result = _flowboard(restored_env, work, "restore", str(tmp_path / "after"))
    assert result.returncode == 0, result.stderr
    restored = _restored_records(tmp_path / "restored", tmp_path / "restored.log")
    restored = _without_restore_records(restored)

    assert {n: len(d) for n, d in restored.items()} == {n: len(d) for n, d in original.items()}
    assert [len(original[name]) for name in ("flows", "executions")] == [3, 3]
    assert len(original["assets"]) == 6  # an upload and a video per flow
    assert restored == original  # document by document
    assert _media(tmp_path / "restored" / "media") == original_media
    assert len(original_media) == 9  # each upload, video and poster

    # The backup taken mid-run restores too, with the file of every asset it names.
    mid_env = {**env, "FLOWBOARD_DATA_DIR": str(tmp_path / "restored-mid")}
    result = _flowboard(mid_env, work, "restore", str(tmp_path / "during"))
    assert result.returncode == 0, result.stderr
    mid = _restored_records(tmp_path / "restored-mid", tmp_path / "restored-mid.log")
    named = {key for asset in mid["assets"] for key, _ in media_keys(asset)}
    assert named == set(_media(tmp_path / "restored-mid" / "media"))
    assert named <= set(original_media)
