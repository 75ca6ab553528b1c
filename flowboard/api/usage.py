"""`GET /usage`: the caller's organisation's storage, generations and cost by month."""

from __future__ import annotations

from aiohttp import web

from flowboard.api.bodies import json_answer
from flowboard.api.endpoint import Endpoint
from flowboard.api.flows import PREFIX
from flowboard.api.principal import org_id
from flowboard.keys import DATABASE, SETTINGS
from flowboard.retention.usage import UsageReport, usage


async def get_usage(request: web.Request) -> web.Response:
    rows = await usage(request.app[DATABASE], org_id(request))
    return json_answer(UsageReport(unit=request.app[SETTINGS].costs.unit, items=rows))


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET",
            f"{PREFIX}/usage",
            get_usage,
            "Storage bytes, generations and cost of the organisation per UTC month",
            "execution",
            None,
            UsageReport,
        )
    ]
