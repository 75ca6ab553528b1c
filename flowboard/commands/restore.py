"""`flowboard restore SRC`: all or nothing.

The whole backup is checked first (every file's size and SHA-256, every dump decoded and
counted), then loaded into a staging folder inside the data directory (`.restore/`: the
embedded database's `db/` and the local storage's `media/`), and only then swapped in by
renames. Any failure before the swap removes the staging folder, so the data directory is
as it was. Parts that cannot be staged (an external `database.uri`, S3 storage) are
written in place after the check, and undone (collections dropped, objects deleted) if
a later step fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson

from flowboard import runfiles
from flowboard.audit.log import AuditLog, cli_actor
from flowboard.audit.model import AuditAction
from flowboard.commands.backup_manifest import BackupError, DumpFile, Manifest, verify
from flowboard.config import Settings
from flowboard.db.database import Database
from flowboard.storage.base import Storage, StorageBackend

STAGING = ".restore"
_BATCH = 1000


@dataclass
class _Undo:
    """What was written outside the staging folder, to remove if the restore fails."""

    collections: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    """Which parts of the data directory are staged and swapped in."""

    target: Path
    stage_db: bool
    stage_media: bool

    @classmethod
    def of(cls, settings: Settings) -> _Plan:
        local = StorageBackend(settings.storage.backend) is StorageBackend.LOCAL
        return cls(settings.data_path, not settings.database.uri, local)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p, on in (("db", self.stage_db), ("media", self.stage_media)) if on)

    @property
    def staging(self) -> Path:
        return self.target / STAGING


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


async def _check_empty(database: Database) -> None:
    for name in await database.db.list_collection_names():
        if await database.db[name].find_one({}, {"_id": 1}) is not None:
            raise BackupError(
                f"the database is not empty (collection {name!r}); restore needs none"
            )


async def _check_target(settings: Settings, plan: _Plan) -> None:
    """Refuse a data directory that holds data (an empty database may be replaced)."""
    from flowboard.db.lifecycle import open_database

    if runfiles.read(plan.target, runfiles.SERVE_FILE) is not None:
        raise BackupError("flowboard serve is running on this data directory: stop it first")
    if runfiles.read(plan.target, runfiles.DATABASE_FILE) is not None:
        raise BackupError("a database is running on this data directory: stop it first")
    if plan.stage_media and _has_files(plan.target / "media"):
        raise BackupError(f"{plan.target / 'media'} holds files; restore needs none")
    if not plan.stage_db or _has_files(plan.target / "db"):
        async with open_database(settings) as database:
            await _check_empty(database)


async def _documents(path: Path) -> AsyncIterator[list[dict[str, Any]]]:
    """A dump's documents, a batch at a time, decoded off the event loop."""
    with path.open("rb") as handle:
        documents = bson.decode_file_iter(handle)
        while batch := await asyncio.to_thread(list, itertools.islice(documents, _BATCH)):
            yield batch


async def _load_dump(database: Database, src: Path, dump: DumpFile, undo: _Undo) -> None:
    undo.collections.append(dump.collection)
    if dump.collection not in await database.db.list_collection_names():
        await database.db.create_collection(dump.collection)  # empty, but there as before
    async for batch in _documents(src / dump.path):
        await database.db[dump.collection].insert_many(batch, ordered=True)


async def _load_media(storage: Storage, src: Path, manifest: Manifest, undo: _Undo) -> None:
    for item in manifest.media:
        undo.keys.append(item.key)
        stored = await storage.put_file(item.key, src / item.path, item.content_type)
        if stored.sha256 != item.sha256:  # changed since the check
            raise BackupError(f"{item.path}: damaged (SHA-256 differs from the manifest)")


async def _load(settings: Settings, src: Path, manifest: Manifest, undo: _Undo) -> None:
    """Write the backup through `settings` (the staging folder's, where staged)."""
    from flowboard.db.lifecycle import open_database
    from flowboard.storage.factory import open_storage

    async with open_database(settings) as database, open_storage(settings) as storage:
        try:
            await _load_media(storage, src, manifest, undo)
            for dump in manifest.dumps:
                await _load_dump(database, src, dump, undo)
            details = {"collections": manifest.collections, "media": len(manifest.media)}
            await AuditLog(database).record(
                AuditAction.RESTORED, *cli_actor(), None, str(src), details
            )
        except BaseException:
            await _undo(database, storage, undo)
            raise


async def _undo(database: Database, storage: Storage, undo: _Undo) -> None:
    """Remove what was written outside the staging folder (nothing there before)."""
    with contextlib.suppress(Exception):
        for name in undo.collections:
            await database.db.drop_collection(name)
        for key in undo.keys:
            await storage.delete(key)


@contextlib.contextmanager
def _staging(plan: _Plan) -> Iterator[Path]:
    """A fresh staging folder, removed (with the data directory, if made here) on failure."""
    made_target = not plan.target.exists()
    shutil.rmtree(plan.staging, ignore_errors=True)  # left by a killed restore
    plan.staging.mkdir(parents=True)
    try:
        yield plan.staging
    except BaseException:
        shutil.rmtree(plan.staging, ignore_errors=True)
        if made_target:
            shutil.rmtree(plan.target, ignore_errors=True)
        raise


def _swap(plan: _Plan) -> None:
    """Rename the staged parts into the data directory; put the old ones back on failure."""
    old = plan.staging / "replaced"
    old.mkdir()
    done: list[str] = []
    try:
        for part in plan.parts:
            if (plan.target / part).exists():
                os.replace(plan.target / part, old / part)
            os.replace(plan.staging / part, plan.target / part)
            done.append(part)
    except OSError as exc:
        for part in reversed(plan.parts):
            if part in done:
                os.replace(plan.target / part, plan.staging / part)
            if (old / part).exists():
                os.replace(old / part, plan.target / part)
        raise BackupError(f"cannot move the restored data into {plan.target}: {exc}") from exc
    shutil.rmtree(plan.staging, ignore_errors=True)


async def restore(settings: Settings, src: Path) -> Manifest:
    """Check the whole backup, load it into a staging folder, then swap it in."""
    manifest = Manifest.read(src)
    await asyncio.to_thread(verify, src, manifest)
    plan = _Plan.of(settings)
    await _check_target(settings, plan)
    undo = _Undo()
    with _staging(plan) as staging:
        staged = settings.model_copy(update={"data_dir": str(staging)})
        await _load(staged, src, manifest, undo)
        await asyncio.to_thread(_swap, plan)
    return manifest
