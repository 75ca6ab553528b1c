"""The caller's organisation's budget (limits are set by `flowboard budget set`)."""

from __future__ import annotations

from aiohttp import web

from flowboard.api.bodies import json_answer
from flowboard.api.endpoint import Endpoint
from flowboard.api.flows import PREFIX
from flowboard.api.principal import org_id
from flowboard.keys import ENGINE
from flowboard.models.budgets import BudgetView


async def get_budget(request: web.Request) -> web.Response:
    budgets = request.app[ENGINE].budgets
    assert budgets is not None  # the app always sets them
    return json_answer(await budgets.view(org_id(request)))


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET",
            f"{PREFIX}/budget",
            get_budget,
            "The organisation's spend limits and what today and this month spent (UTC)",
            "execution",
            None,
            BudgetView,
        )
    ]
