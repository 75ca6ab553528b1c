"""Free disk space of the data directory (and the local media directory): a guard.

Below the floor (`storage.min_free_bytes`, or `storage.min_free_percent` of the disk,
whichever is larger) new uploads and runs are refused with 507. Writes of work already
running go on into a reserve down to half the floor and fail with `storage_full` only
past it, so the other half stays for the embedded database: Flowboard's own writes never
take its last bytes. Nothing is cached: freed space counts at the next check.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flowboard.config import Settings
from flowboard.storage.base import InsufficientStorage

_LOGGER = logging.getLogger(__name__)
STORAGE_FULL = "storage_full"


@dataclass(frozen=True)
class DiskSpace:
    """One watched filesystem as last measured.

    path: the watched directory (the first one on this filesystem).
    free: bytes an unprivileged writer may still use.
    total: the filesystem's size in bytes.
    floor: below this many free bytes new work is refused.
    """

    path: Path
    free: int
    total: int
    floor: int

    @property
    def low(self) -> bool:
        return self.free < self.floor

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "freeBytes": self.free, "totalBytes": self.total,
                "floorBytes": self.floor, "low": self.low}  # fmt: skip


def _filesystems(paths: Iterable[Path]) -> list[Path]:
    """One directory per filesystem (the media directory is often on the data disk)."""
    seen: dict[int, Path] = {}
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        seen.setdefault(os.stat(path).st_dev, path)
    return list(seen.values())


@dataclass
class SpaceGuard:
    """Measures free space and refuses work below the floor (logged once each way)."""

    paths: list[Path]
    min_free_bytes: int
    min_free_percent: float
    _low: set[Path] = field(default_factory=set)

    @classmethod
    def from_settings(cls, settings: Settings) -> SpaceGuard:
        watched = [settings.data_path]
        if settings.storage.backend == "local":
            watched.append(settings.data_path / "media")
        return cls(
            _filesystems(watched),
            settings.storage.min_free_bytes,
            settings.storage.min_free_percent,
        )

    def floor(self, total: int) -> int:
        return max(self.min_free_bytes, int(total * self.min_free_percent / 100))

    def measure_path(self, path: Path) -> DiskSpace:
        """Measure one directory's filesystem (a statvfs call; runs in any thread)."""
        stat = os.statvfs(path)
        total = stat.f_blocks * stat.f_frsize
        return DiskSpace(path, stat.f_bavail * stat.f_frsize, total, self.floor(total))

    def measure(self) -> list[DiskSpace]:
        """Measure every watched filesystem and log when one goes low or recovers."""
        found = [self.measure_path(path) for path in self.paths]
        for space in found:
            self._note(space)
        return found

    def _note(self, space: DiskSpace) -> None:
        extra = {"path": str(space.path), "free_bytes": space.free, "floor_bytes": space.floor}
        if space.low and space.path not in self._low:
            self._low.add(space.path)
            _LOGGER.warning("disk space low: refusing uploads and runs", extra=extra)
        elif not space.low and space.path in self._low:
            self._low.discard(space.path)
            _LOGGER.info("disk space recovered", extra=extra)

    async def check(self) -> list[DiskSpace]:
        """Measure off the event loop (statvfs may block on a network filesystem)."""
        return await asyncio.to_thread(self.measure)

    async def require(self) -> None:
        """Raise InsufficientStorage when a watched filesystem is below its floor."""
        low = [space for space in await self.check() if space.low]
        if low:
            raise InsufficientStorage(_describe(low[0]))

    def reserve(self, target: Path, incoming: int) -> None:
        """Raise InsufficientStorage if writing `incoming` more bytes under `target`
        would take its filesystem below half its floor (the database's share).

        Called from the writing thread before each chunk.
        """
        space = self.measure_path(target)
        if space.free - incoming < space.floor // 2:
            raise InsufficientStorage(_describe(space))


def _describe(space: DiskSpace) -> str:
    """For the caller and the task's error: sizes, never the server's paths."""
    mib = 1 << 20
    return (
        f"not enough free disk space: {space.free // mib} MiB free, "
        f"{space.floor // mib} MiB kept free"
    )


def is_storage_full(exc: BaseException) -> bool:
    """True for InsufficientStorage and ENOSPC / EDQUOT, or an error caused by them."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short __cause__ chain; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, InsufficientStorage):
            return True
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
