"""The sweeper behind `flowboard gc`: what no record needs any more, found, then deleted.

Three kinds of garbage:
- takes past `retention.keep_last_takes` / `retention.takes_days` (a node's newest take
  and any take a flow node names are always kept; default: every take forever);
- media files no asset record names (the takes removed here included);
- `flow_parts` their flow's head does not name (a crash between the parts and the head,
  a lost unacknowledged delete, a deleted flow).

Anything younger than `retention.grace_seconds` is left alone: a job's file is written
before its asset record names it, and an edit's parts before its head. Deleting runs in
that order (takes, then media, then parts), so a sweep cut short leaves only what the
next one finds again.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowboard.config import RetentionSettings
from flowboard.db.database import Database, Document

TEMP_PREFIX = ".~"  # storage/local.py: a file being written


@dataclass(frozen=True)
class MediaFile:
    key: str
    size: int


@dataclass
class SweepPlan:
    """What a sweep deletes: take asset ids, media files, flow part ids (with their flow)."""

    takes: list[str] = field(default_factory=list)
    media: list[MediaFile] = field(default_factory=list)
    parts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.takes or self.media or self.parts)

    def lines(self) -> Iterator[str]:
        yield from (f"take\t{asset_id}" for asset_id in self.takes)
        yield from (f"media\t{m.key}\t{m.size}" for m in self.media)
        yield from (f"flow_part\t{part}\t{flow}" for part, flow in self.parts)


def asset_files(asset: Document) -> dict[str, int]:
    """Key → size of every file an asset record names (its file, poster and outputs)."""
    infos = [asset.get("storage"), asset.get("poster"), *(asset.get("outputs") or [])]
    return {
        info["key"]: int(info.get("size") or 0)
        for info in infos
        if isinstance(info, dict) and isinstance(info.get("key"), str)
    }


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _node_asset_ids(items: list[Any]) -> Iterator[str]:
    for item in items:
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, dict) and isinstance(data.get("assetId"), str):
            yield data["assetId"]


async def _flows(database: Database) -> tuple[dict[str, set[str]], set[str]]:
    """Each flow's named part ids, and every asset id a flow node names."""
    named: dict[str, set[str]] = {}
    shown: set[str] = set()
    async for head in database.flows.find({}, {"parts": 1, "nodes": 1}):
        named[str(head["_id"])] = {str(p["id"]) for p in head.get("parts") or []}
        shown.update(_node_asset_ids(head.get("nodes") or []))
    async for part in database.flow_parts.find({}, {"items": 1}):
        shown.update(_node_asset_ids(part.get("items") or []))
    return named, shown


def _expired_takes(
    assets: list[Document], shown: set[str], rules: RetentionSettings, now: datetime
) -> list[str]:
    """Completed takes beyond the rules, never a node's newest nor one a node names."""
    if rules.keep_last_takes is None and rules.takes_days is None:
        return []
    groups: dict[tuple[str, str, str], list[Document]] = defaultdict(list)
    for asset in assets:
        take = asset.get("status") == "COMPLETED" and asset.get("workflow") != "upload"
        if take and asset.get("nodeId") and asset.get("flowId"):
            groups[(asset["orgId"], asset["flowId"], asset["nodeId"])].append(asset)
    cutoff = None if rules.takes_days is None else now - timedelta(days=rules.takes_days)
    expired: list[str] = []
    for takes in groups.values():
        takes.sort(key=lambda a: (_aware(a.get("createdAt")) or now, str(a["_id"])), reverse=True)
        for index, take in enumerate(takes[1:], start=1):
            beyond = rules.keep_last_takes is not None and index >= rules.keep_last_takes
            created = _aware(take.get("createdAt"))
            old = cutoff is not None and created is not None and created < cutoff
            if (beyond or old) and str(take["_id"]) not in shown:
                expired.append(str(take["_id"]))
    return expired


def _stored_files(root: Path, before: float) -> list[MediaFile]:
    """Every finished file under the local media root last written before `before`."""
    found: list[MediaFile] = []
    for folder, _, names in os.walk(root):
        for name in names:
            if name.startswith(TEMP_PREFIX):
                continue
            path = Path(folder) / name
            stat = path.stat()
            if stat.st_mtime < before:
                found.append(MediaFile(path.relative_to(root).as_posix(), stat.st_size))
    return found


async def plan_sweep(
    database: Database, media_root: Path | None, rules: RetentionSettings, now: datetime
) -> SweepPlan:
    """What a sweep would delete now (`media_root` None: media not swept, S3)."""
    grace = now - timedelta(seconds=rules.grace_seconds)
    named, shown = await _flows(database)
    assets = [doc async for doc in database.assets.find({})]
    plan = SweepPlan(takes=_expired_takes(assets, shown, rules, now))
    dropped = set(plan.takes)
    if media_root is not None:
        kept = {key for a in assets if str(a["_id"]) not in dropped for key in asset_files(a)}
        files = await asyncio.to_thread(_stored_files, media_root, grace.timestamp())
        plan.media = sorted((f for f in files if f.key not in kept), key=lambda f: f.key)
    async for part in database.flow_parts.find({}, {"flowId": 1, "createdAt": 1}):
        part_id, flow_id = str(part["_id"]), str(part.get("flowId"))
        created = _aware(part.get("createdAt"))  # none: written before parts had a time
        if part_id not in named.get(flow_id, set()) and (created is None or created < grace):
            plan.parts.append((part_id, flow_id))
    plan.parts.sort()
    return plan


async def apply_sweep(database: Database, media_root: Path | None, plan: SweepPlan) -> None:
    """Delete what the plan names: take records, then media files, then parts."""
    if plan.takes:
        await database.assets.delete_many({"_id": {"$in": plan.takes}})
    for item in plan.media:
        if media_root is not None:
            await asyncio.to_thread((media_root / item.key).unlink, missing_ok=True)
    if plan.parts:
        await database.flow_parts.delete_many({"_id": {"$in": [p for p, _ in plan.parts]}})
