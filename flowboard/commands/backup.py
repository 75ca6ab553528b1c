"""`flowboard backup DEST` and `flowboard restore SRC`: the data directory, while serving.

A backup is a folder: `db/<collection>.bson` (every document, as the driver reads it,
BSON-encoded one after another, so dates and ids keep their types), `media/<key>` (every
file an asset record names, read through the configured storage) and `manifest.json`
(format, counts, and each media file's size and SHA-256).

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
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import bson

from flowboard.config import Settings
from flowboard.db.database import Database, Document
from flowboard.storage.base import validate_key

FORMAT = "flowboard.backup/v1"
MANIFEST = "manifest.json"
LAST = ("assets",)  # dumped after the collections that point at them


class BackupError(Exception):
    """The backup or restore cannot be made (the message says why)."""


@dataclass
class MediaFile:
    """One stored file of the backup."""

    key: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"


@dataclass
class Manifest:
    """What a backup holds; written last, so a backup without it is incomplete."""

    format: str
    database: str
    collections: dict[str, int] = field(default_factory=dict)
    media: list[MediaFile] = field(default_factory=list)

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BackupError(f"{folder}: not a complete backup ({exc})") from exc
        if raw.get("format") != FORMAT:
            raise BackupError(f"{folder}: format {raw.get('format')!r}, expected {FORMAT!r}")
        media = [MediaFile(**m) for m in raw.get("media", [])]
        return cls(raw["format"], raw["database"], dict(raw["collections"]), media)


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


async def _dump(database: Database, name: str, target: Path) -> list[Document]:
    """Write one collection; its documents (kept for the assets' media keys)."""
    docs = [doc async for doc in database.db[name].find({}).sort("_id", 1)]
    data = b"".join(bson.encode(doc) for doc in docs)
    await asyncio.to_thread(target.write_bytes, data)
    return docs


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
            docs = await _dump(database, name, dest / "db" / f"{name}.bson")
            manifest.collections[name] = len(docs)
            if name == "assets":
                keys.update(pair for doc in docs for pair in media_keys(doc))
        for key, content_type in keys.items():
            target = dest / "media" / validate_key(key)
            manifest.media.append(await _copy_media(storage, key, content_type, target))
    text = json.dumps(asdict(manifest), indent=1)
    (dest / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, 1 << 20):
            yield chunk


async def _check_empty(database: Database) -> None:
    for name in await database.db.list_collection_names():
        if await database.db[name].find_one({}, {"_id": 1}) is not None:
            raise BackupError(
                f"the database is not empty (collection {name!r}); restore needs none"
            )


async def restore(settings: Settings, src: Path) -> Manifest:
    """Load a backup into the configured (empty) database and storage; check every file."""
    from flowboard import runfiles
    from flowboard.db.lifecycle import open_database
    from flowboard.storage.factory import open_storage

    manifest = Manifest.read(src)
    if runfiles.read(settings.data_path, runfiles.SERVE_FILE) is not None:
        raise BackupError("flowboard serve is running on this data directory: stop it first")
    async with open_database(settings) as database, open_storage(settings) as storage:
        await _check_empty(database)
        for item in manifest.media:
            stored = await storage.put_stream(
                item.key, _file_chunks(src / "media" / validate_key(item.key)), item.content_type
            )
            if stored.sha256 != item.sha256:
                raise BackupError(f"media {item.key}: SHA-256 differs from the manifest")
        for name, count in manifest.collections.items():
            raw = await asyncio.to_thread((src / "db" / f"{name}.bson").read_bytes)
            docs = bson.decode_all(raw)
            if len(docs) != count:
                raise BackupError(f"{name}: {len(docs)} documents, the manifest says {count}")
            if docs:
                await database.db[name].insert_many(docs)
            elif name not in await database.db.list_collection_names():
                await database.db.create_collection(name)  # empty, but there as before
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
