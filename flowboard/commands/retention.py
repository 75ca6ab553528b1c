"""`flowboard gc [--dry-run]` and `flowboard usage [--org ORG]` (both work while serve runs)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from flowboard.commands.tokens import org_name
from flowboard.config import Settings
from flowboard.ids import utcnow
from flowboard.storage.base import StorageBackend

USAGE_COLUMNS = ("org", "month", "storage_bytes", "files", "generations", "cost")


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gc = commands.add_parser("gc", help="delete unreferenced media, orphaned flow parts, old takes")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    usage = commands.add_parser("usage", help="storage, generations and cost per org and month")
    usage.add_argument("--org", type=org_name, help="only this organisation")
    usage.add_argument("--json", action="store_true", help="the report as JSON")


def _media_root(settings: Settings) -> Path | None:
    if StorageBackend(settings.storage.backend) is StorageBackend.LOCAL:
        return settings.data_path / "media"
    return None


async def _gc(settings: Settings, dry_run: bool) -> int:
    from flowboard.db.shared import open_shared_database
    from flowboard.retention.sweep import apply_sweep, plan_sweep

    root = _media_root(settings)
    if root is None:
        sys.stderr.write("flowboard gc: S3 media are not swept yet; takes and parts are\n")
    async with open_shared_database(settings) as database:
        plan = await plan_sweep(database, root, settings.retention, utcnow())
        if not dry_run:
            await apply_sweep(database, root, plan)
    verb = "would delete" if dry_run else "deleted"
    sys.stdout.write("".join(f"{line}\n" for line in plan.lines()))
    counts = f"{len(plan.takes)} takes, {len(plan.media)} media files"
    size = sum(m.size for m in plan.media)
    sys.stderr.write(f"{verb} {counts} ({size} bytes), {len(plan.parts)} flow parts\n")
    return 0


async def _usage(settings: Settings, args: argparse.Namespace) -> int:
    from flowboard.db.shared import open_shared_database
    from flowboard.retention.usage import UsageReport, usage

    async with open_shared_database(settings) as database:
        rows = await usage(database, args.org)
    if args.json:
        report = UsageReport(unit=settings.costs.unit, items=rows)
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return 0
    lines = ["\t".join(USAGE_COLUMNS)]
    for r in rows:
        cells = (r.org_id, r.month, r.storage_bytes, r.files, r.generations, r.cost)
        lines.append("\t".join(str(c) for c in cells))
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`flowboard gc` / `flowboard usage`."""
    if args.command == "gc":
        return asyncio.run(_gc(settings, args.dry_run))
    return asyncio.run(_usage(settings, args))
