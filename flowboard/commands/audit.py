"""`flowboard audit`: the audit log, newest first, of every organisation or one."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime

from flowboard.audit.log import AuditFilter, AuditLog
from flowboard.audit.model import AuditAction, AuditRecord
from flowboard.commands.tokens import org_name
from flowboard.config import Settings

COLUMNS = ("at", "action", "org", "actor", "source", "target", "details")


def _time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("an ISO 8601 time, e.g. 2026-12-01T00:00Z") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. Z")
    return parsed


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="show the audit log (newest first)")
    audit.add_argument("--org", type=org_name, help="only this organisation's records")
    audit.add_argument("--action", type=AuditAction, choices=list(AuditAction))
    audit.add_argument("--actor", help="only this actor (token:tok_…, cli:user@host)")
    audit.add_argument("--since", type=_time, help="at or after this time")
    audit.add_argument("--until", type=_time, help="before this time")
    audit.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    audit.add_argument("--json", action="store_true", help="one JSON object a line")


def _row(record: AuditRecord) -> str:
    cells = (
        f"{record.at:%Y-%m-%dT%H:%M:%SZ}",
        record.action.value,
        record.org_id or "-",
        record.actor,
        record.source,
        record.target or "-",
        json.dumps(record.details, sort_keys=True) if record.details else "-",
    )
    return "\t".join(cells)


async def _audit_command(settings: Settings, args: argparse.Namespace) -> int:
    from flowboard.db.shared import open_shared_database

    where = AuditFilter(args.org, args.action, args.actor, args.since, args.until)
    async with open_shared_database(settings) as database:
        records, _ = await AuditLog(database).find(where, 0, max(1, args.limit))
    if args.json:
        lines = [json.dumps(r.model_dump(mode="json", by_alias=True)) for r in records]
    else:
        lines = ["\t".join(COLUMNS), *(_row(r) for r in records)]
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`flowboard audit [--org ORG] [--action A] [--since T] [--json]`."""
    return asyncio.run(_audit_command(settings, args))
