"""Audit records: who did what, when and from where; each organisation reads only its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from pymongo import MongoClient

from flowboard.api.audit import AUDIT
from flowboard.app import create_app
from flowboard.audit.log import TTL_INDEX, AuditFilter, AuditLog
from flowboard.audit.model import AuditAction
from flowboard.keys import DATABASE
from tests.servers.app import OTHER_ORG, AppClient, FlowboardClient, MakeSettings
from tests.servers.waiting import API

HOOK = "http://127.0.0.1:1/hook"


async def _app_client(aiohttp_client: Callable[..., Any], make_settings: MakeSettings) -> Any:
    settings = make_settings(network={"allow": ["127.0.0.1"]})
    return await aiohttp_client(create_app(settings))


async def test_webhook_changes_are_audited_and_only_their_org_reads_them(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client: FlowboardClient = await _app_client(aiohttp_client, make_settings)
    made = await (await client.post(f"{API}/webhooks", json={"url": HOOK})).json()
    assert (await client.delete(f"{API}/webhooks/{made['id']}")).status == 204
    page = await (await client.get(f"{API}/audit")).json()
    assert [r["action"] for r in page["items"]] == ["webhook.deleted", "webhook.created"]
    created = page["items"][1]
    assert created["orgId"] == "default" and created["target"] == made["id"]
    assert created["actor"].startswith("token:tok_") and created["source"] == "127.0.0.1"
    assert created["details"]["url"] == HOOK

    only = await (await client.get(f"{API}/audit?action=webhook.created&limit=1")).json()
    assert [r["id"] for r in only["items"]] == [created["id"]] and only["total"] == 1
    second = await (await client.get(f"{API}/audit?limit=1&offset=1")).json()
    assert [r["id"] for r in second["items"]] == [created["id"]] and second["total"] == 2
    bad = await client.get(f"{API}/audit?action=nope")
    assert bad.status == 400

    other = FlowboardClient(client.server, org=OTHER_ORG, borrowed=True)
    await other.start_server()
    try:
        theirs = await (await other.get(f"{API}/audit")).json()
        assert theirs["total"] == 0 and theirs["items"] == []
    finally:
        await other.close()
    anonymous = FlowboardClient(client.server, org=None, borrowed=True)
    await anonymous.start_server()
    try:
        assert (await anonymous.get(f"{API}/audit")).status == 401
    finally:
        await anonymous.close()


async def test_refused_credentials_are_audited_with_the_address_rate_limited(
    client: AppClient, client_as: Callable[..., Any]
) -> None:
    stranger = await client_as(None, headers={"Authorization": "Bearer fb_" + "x" * 40})
    for _ in range(20):
        assert (await stranger.get(f"{API}/flows")).status == 401
    log: AuditLog = client.app[AUDIT]
    refused, total = await log.find(AuditFilter(action=AuditAction.AUTH_REFUSED))
    assert total == 5  # the first few a minute, as the log lines
    assert {(r.source, r.org_id, r.details["path"]) for r in refused} == {
        ("127.0.0.1", None, f"{API}/flows")
    }
    mine = await (await client.get(f"{API}/audit")).json()
    assert mine["total"] == 0  # nobody's organisation: an operator reads them (CLI)


async def test_retention_is_a_ttl_index_that_follows_the_setting(client: AppClient) -> None:
    log = AuditLog(client.app[DATABASE])
    for days in (400, 30):
        await log.ensure_indexes(days)
        info = await log.collection.index_information()
        assert info[TTL_INDEX]["expireAfterSeconds"] == days * 86_400


def _flowboard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flowboard", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_token_and_budget_commands_are_audited(
    mongo_server: str, mongo_db_name: str, tmp_path: Any
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env.update(
        FLOWBOARD_DATA_DIR=str(tmp_path / "data"),
        FLOWBOARD_DATABASE__URI=mongo_server,
        FLOWBOARD_DATABASE__NAME=mongo_db_name,
    )
    created = _flowboard(env, "token", "create", "--org", "acme", "--name", "ci")
    assert created.returncode == 0, created.stderr
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server)
    try:
        token_id = client[mongo_db_name]["tokens"].find_one({})["_id"]  # type: ignore[index]
    finally:
        client.close()
    assert _flowboard(env, "token", "revoke", token_id).returncode == 0
    budget = _flowboard(env, "budget", "set", "--org", "acme", "--day", "5")
    assert budget.returncode == 0, budget.stderr

    shown = _flowboard(env, "audit", "--org", "acme", "--json")
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["action"] for r in records] == ["budget.changed", "token.revoked", "token.created"]
    assert all(r["actor"].startswith("cli:") and r["orgId"] == "acme" for r in records)
    assert records[2]["target"] == token_id and records[2]["details"] == {"name": "ci"}
    assert records[0]["details"]["day"] == 5.0 and records[0]["details"]["before"]["day"] is None
    table = _flowboard(env, "audit", "--action", "token.created")
    assert table.stdout.splitlines()[0].startswith("at\taction\torg")
    assert len(table.stdout.splitlines()) == 2
