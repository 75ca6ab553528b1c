"""`flowboard budget set|show`: an organisation's spend limits (works while serve runs)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from flowboard.commands.tokens import org_name
from flowboard.config import Settings


def _limit(value: str) -> float | None:
    """A limit in cost units; "none" removes it."""
    if value.lower() == "none":
        return None
    try:
        amount = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("a number of cost units, or none") from exc
    if not amount >= 0 or amount == float("inf"):
        raise argparse.ArgumentTypeError("a finite number >= 0, or none")
    return amount


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    budget = commands.add_parser("budget", help="set and show an organisation's spend limits")
    actions = budget.add_subparsers(dest="action", required=True)
    setting = actions.add_parser("set", help="set the day and month limits (in cost units)")
    setting.add_argument("--org", required=True, type=org_name, help="organisation")
    # Not given: the limit stays as it is (SUPPRESS leaves the attribute out).
    for period in ("day", "month"):
        setting.add_argument(
            f"--{period}",
            type=_limit,
            default=argparse.SUPPRESS,
            help=f"limit per UTC {period} in cost units (none: no limit)",
        )
    show = actions.add_parser("show", help="print the limits and what was spent, as JSON")
    show.add_argument("--org", required=True, type=org_name, help="organisation")


async def _budget_command(settings: Settings, args: argparse.Namespace) -> int:
    from flowboard.audit.log import AuditLog, cli_actor
    from flowboard.audit.model import AuditAction
    from flowboard.budgets.service import Budgets
    from flowboard.budgets.store import BudgetStore
    from flowboard.db.shared import open_shared_database

    async with open_shared_database(settings) as database:
        budgets = Budgets(BudgetStore(database), settings.costs.unit)
        if args.action == "set":
            current = await budgets.view(args.org)
            day = getattr(args, "day", current.day.limit)
            month = getattr(args, "month", current.month.limit)
            view = await budgets.set_limits(args.org, day, month)
            before = {"day": current.day.limit, "month": current.month.limit}
            details = {"day": day, "month": month, "before": before}
            await AuditLog(database).record(
                AuditAction.BUDGET_CHANGED, *cli_actor(), args.org, args.org, details
            )
        else:
            view = await budgets.view(args.org)
    sys.stdout.write(json.dumps(view.to_json(), indent=2) + "\n")
    return 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`flowboard budget set|show`."""
    return asyncio.run(_budget_command(settings, args))
