"""`flowboard backup DEST` and `flowboard restore SRC`: the data directory, while serving.

A backup is a folder: `db/<collection>.bson` (every document, as the driver reads it,
BSON-encoded one after another, so dates and ids keep their types), `media/<key>` (every
file an asset record names, read through the configured storage) and `manifest.json`
(format, counts, and every file's size and SHA-256: `backup_manifest.py`). A restore
checks all of it before it writes anything (`restore.py`).

Consistent while `flowboard serve` runs: it reads through the running database (found
through the data directory's run file), collection by collection, the assets last, so
every asset a dumped flow or execution names is in the dump; media files are written
once under a fresh key and never changed, so the files the dumped asset records name
are copied whole (a file of a job still running is not named by its record yet, and that
job resumes from what is stored after a restore, as after any restart).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson

from flowboard.commands.backup_manifest import (
    FORMAT,
    MANIFEST,
    BackupError,
    DumpFile,
    Manifest,
    MediaFile,
)
from flowboard.commands.restore import restore
from flowboard.config import Settings
from flowboard.db.database import Database, Document
from flowboard.storage.base import validate_key

LAST = ("assets",)  # dumped after the collections that point at them


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser("backup", help="back up the database and media (serve may run)")
    backup.add_argument("dest", type=Path, help="a new (or empty) folder")
    restore = commands.add_parser("restore", help="restore a backup into an empty data directory")
    restore.add_argument("src", type=Path, help="a folder written by `flowboard backup`")


def media_keys(asset: Document) -> Iterator[tuple[str, str]]:
    """(key, content type) of each file an asset record names: its file, poster, outputs."""
    infos = [asset.get("storage"), asset.get("poster"), *(asset.get("outputs") or [])]
    for info in infos:
        if isinstance(info, dict) and isinstance(info.get("key"), str):
            yield info["key"], str(info.get("contentType") or "application/octet-stream")


def _collection_order(names: list[str]) -> list[str]:
    return sorted(n for n in names if n not in LAST) + [n for n in LAST if n in names]


def _empty_folder(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{path} exists and is not an empty folder")
    (path / "db").mkdir(parents=True, exist_ok=True)
    (path / "media").mkdir(exist_ok=True)
    path.chmod(0o700)  # token hashes and provider state: not for other users


async def _dump(database: Database, name: str, dest: Path) -> tuple[DumpFile, list[Document]]:
    """Write one collection; its entry and documents (kept for the assets' media keys)."""
    docs = [doc async for doc in database.db[name].find({}).sort("_id", 1)]
    data = b"".join(bson.encode(doc) for doc in docs)
    dump = DumpFile(name, len(docs), len(data), hashlib.sha256(data).hexdigest())
    await asyncio.to_thread((dest / dump.path).write_bytes, data)
    return dump, docs


async def _copy_media(storage: Any, key: str, content_type: str, target: Path) -> MediaFile:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        async for chunk in storage.get_stream(key):
            digest.update(chunk)
            size += len(chunk)
            await asyncio.to_thread(out.write, chunk)
    return MediaFile(key, size, digest.hexdigest(), content_type)


async def backup(settings: Settings, dest: Path) -> Manifest:
    """Write a backup of the configured database and storage into `dest`."""
    from flowboard.db.shared import open_shared_database
    from flowboard.storage.factory import open_storage

    _empty_folder(dest)
    manifest = Manifest(FORMAT, settings.database.name)
    async with open_shared_database(settings) as database, open_storage(settings) as storage:
        keys: dict[str, str] = {}
        for name in _collection_order(await database.db.list_collection_names()):
            dump, docs = await _dump(database, name, dest)
            manifest.dumps.append(dump)
            if name == "assets":
                keys.update(pair for doc in docs for pair in media_keys(doc))
        for key, content_type in keys.items():
            target = dest / "media" / validate_key(key)
            manifest.media.append(await _copy_media(storage, key, content_type, target))
    text = json.dumps(manifest.to_json(), indent=1)
    (dest / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def _summary(verb: str, manifest: Manifest, where: Path) -> str:
    counts = ", ".join(f"{n} {c}" for n, c in manifest.collections.items())
    size = sum(m.size for m in manifest.media)
    return f"{verb} {where}: {counts}; {len(manifest.media)} media files ({size} bytes)\n"


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`flowboard backup DEST` / `flowboard restore SRC`."""
    try:
        if args.command == "backup":
            manifest = asyncio.run(backup(settings, args.dest))
            sys.stdout.write(_summary("backed up to", manifest, args.dest))
        else:
            manifest = asyncio.run(restore(settings, args.src))
            sys.stdout.write(_summary("restored from", manifest, args.src))
    except BackupError as exc:
        sys.stderr.write(f"flowboard {args.command}: {exc}\n")
        return 2
    return 0
