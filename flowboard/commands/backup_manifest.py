"""A backup's `manifest.json` and the check of every file it names, before a restore writes.

Format v2 gives every file its size and SHA-256, the database dumps included; v1 backups
(media sums only) still restore, their dumps checked by decoding them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bson
from bson.errors import BSONError

from flowboard.storage.base import InvalidKey, validate_key

FORMAT = "flowboard.backup/v2"
FORMATS = ("flowboard.backup/v1", FORMAT)
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


class BackupError(Exception):
    """The backup or restore cannot be made (the message says why, in one line)."""


@dataclass
class MediaFile:
    """One stored file of the backup."""

    key: str
    size: int
    sha256: str
    content_type: str = "application/octet-stream"

    @property
    def path(self) -> str:
        return f"media/{validate_key(self.key)}"


@dataclass
class DumpFile:
    """One collection's dump; size and sha256 are None in a v1 backup."""

    collection: str
    documents: int
    size: int | None = None
    sha256: str | None = None

    @property
    def path(self) -> str:
        return f"db/{self.collection}.bson"


@dataclass
class Manifest:
    """What a backup holds; written last, so a backup without it is incomplete."""

    format: str
    database: str
    dumps: list[DumpFile] = field(default_factory=list)
    media: list[MediaFile] = field(default_factory=list)

    @property
    def collections(self) -> dict[str, int]:
        return {dump.collection: dump.documents for dump in self.dumps}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "database": self.database,
            "collections": self.collections,  # read by v1 readers and people
            "dumps": [vars(dump) for dump in self.dumps],
            "media": [vars(item) for item in self.media],
        }

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BackupError(f"{MANIFEST}: missing (not a complete backup)") from None
        except (OSError, ValueError) as exc:
            raise BackupError(f"{MANIFEST}: unreadable or truncated ({exc})") from exc
        try:
            return cls._parse(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupError(f"{MANIFEST}: malformed ({type(exc).__name__}: {exc})") from exc

    @classmethod
    def _parse(cls, raw: dict[str, Any]) -> Manifest:
        if raw.get("format") not in FORMATS:
            raise BackupError(f"{MANIFEST}: format {raw.get('format')!r}, expected {FORMAT!r}")
        if "dumps" in raw:
            dumps = [DumpFile(**d) for d in raw["dumps"]]
        else:
            dumps = [DumpFile(name, int(count)) for name, count in raw["collections"].items()]
        media = [MediaFile(**m) for m in raw.get("media", [])]
        return cls(raw["format"], raw["database"], dumps, media)


def file_sums(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _amount(size: int, expected: int) -> str:
    if expected < 10 * 1024:
        return f"{size} of {expected} bytes"
    return f"{size // 1024} of {expected // 1024} KB"


def _check_file(src: Path, name: str, size: int | None, sha256: str | None) -> None:
    path = src / name
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise BackupError(f"{name}: missing") from None
    except OSError as exc:
        raise BackupError(f"{name}: unreadable ({exc.strerror})") from exc
    if size is not None and actual < size:
        raise BackupError(f"{name}: truncated ({_amount(actual, size)})")
    if size is not None and actual > size:
        raise BackupError(f"{name}: {actual} bytes, the manifest says {size}")
    if sha256 is not None and file_sums(path)[1] != sha256:
        raise BackupError(f"{name}: damaged (SHA-256 differs from the manifest)")


def _count_documents(src: Path, dump: DumpFile) -> None:
    try:
        with (src / dump.path).open("rb") as handle:
            count = sum(1 for _ in bson.decode_file_iter(handle))
    except BSONError as exc:
        raise BackupError(f"{dump.path}: not valid BSON ({exc})") from exc
    if count != dump.documents:
        raise BackupError(f"{dump.path}: {count} documents, the manifest says {dump.documents}")


def verify(src: Path, manifest: Manifest) -> None:
    """Check every file the manifest names (blocking: run it in a thread)."""
    for dump in manifest.dumps:
        _check_file(src, dump.path, dump.size, dump.sha256)
        _count_documents(src, dump)
    for item in manifest.media:
        try:
            name = item.path
        except InvalidKey as exc:
            raise BackupError(f"{MANIFEST}: media key {item.key!r} is not valid ({exc})") from exc
        _check_file(src, name, item.size, item.sha256)
