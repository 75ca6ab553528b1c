"""Who may see and run what: tokens, organisations, stream tickets, secrets kept out of logs."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, FormData, web
from aiohttp.test_utils import make_mocked_request
from PIL import Image

from flowboard.api.endpoint import Endpoint
from flowboard.api.principal import NoPrincipal, org_id
from flowboard.api.routes import all_endpoints
from flowboard.app import create_app
from flowboard.auth.identity import Unauthenticated
from flowboard.auth.tickets import TicketBook
from flowboard.canvas.model import DEFAULT_ORG
from flowboard.config import ConfigError, load_settings
from flowboard.db.database import Database
from flowboard.keys import AUTH, DATABASE, SETTINGS
from tests.servers.app import OTHER_ORG, AppClient, MakeClient, MakeSettings, SseReader

API = "/api/creative-flowboard"
Ids = dict[str, str]
Snapshot = dict[str, list[dict[str, Any]]]
Reader = Callable[[ClientResponse], SseReader]
COLLECTIONS = (
    "flows",
    "executions",
    "assets",
    "tokens",
    "webhook_subscriptions",
    "webhook_deliveries",
)
# A public address literal passes the SSRF guard without DNS; nothing is ever sent to it.
HOOK = {"url": "http://93.184.216.34/hook", "events": ["asset.completed"]}
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def _upload(ids: Ids) -> dict[str, Any]:
    form = FormData()
    form.add_field("file", _png(), filename="p.png", content_type="image/png")
    return {"data": form}


@dataclass(frozen=True)
class Recipe:
    """How to call one route successfully as the owner of the test world.

    body: request keyword arguments, built afresh for each call from the world's ids.
    own_scope: the route works on the caller's own organisation (create, list), so another
        organisation's token succeeds there, without seeing or touching the owner's data.
    execution: the world needs a finished (cancelled) execution of the flow.
    """

    body: Callable[[Ids], dict[str, Any]] = field(default=lambda ids: {})
    own_scope: bool = False
    execution: bool = False


FLOW, EXE = f"{API}/flows/{{flowId}}", f"{API}/executions/{{executionId}}"
WEBHOOK = f"{API}/webhooks/{{webhookId}}"
RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", f"{API}/flows"): Recipe(lambda ids: {"json": {"name": "New"}}, own_scope=True),
    ("GET", f"{API}/flows"): Recipe(own_scope=True),
    ("GET", FLOW): Recipe(),
    ("PATCH", FLOW): Recipe(lambda ids: {"json": {"name": "Renamed"}}),
    ("DELETE", FLOW): Recipe(),
    ("POST", f"{FLOW}/nodes"): Recipe(lambda ids: {"json": {"id": "n2", "type": "prompt"}}),
    ("PATCH", f"{FLOW}/nodes/{{nodeId}}"): Recipe(lambda ids: {"json": {"data": {"text": "x"}}}),
    ("DELETE", f"{FLOW}/nodes/{{nodeId}}"): Recipe(),
    ("POST", f"{FLOW}/edges"): Recipe(
        lambda ids: {"json": {"id": "e2", "source": "a", "target": "v"}}
    ),
    ("DELETE", f"{FLOW}/edges/{{edgeId}}"): Recipe(),
    ("POST", f"{API}/subscribe/{{flowId}}/ticket"): Recipe(),
    ("GET", f"{API}/subscribe/{{flowId}}"): Recipe(),
    ("POST", f"{API}/run-node"): Recipe(
        lambda ids: {"json": {"flowId": ids["flowId"], "nodeId": "v"}}
    ),
    ("POST", f"{API}/run/{{flowId}}"): Recipe(),
    ("GET", EXE): Recipe(execution=True),
    ("GET", f"{FLOW}/executions"): Recipe(execution=True),
    ("POST", f"{EXE}/cancel"): Recipe(execution=True),
    ("POST", f"{EXE}/retry"): Recipe(execution=True),
    ("POST", f"{API}/assets"): Recipe(_upload, own_scope=True),
    ("GET", f"{API}/assets/{{assetId}}"): Recipe(),
    ("GET", f"{FLOW}/nodes/{{nodeId}}/takes"): Recipe(),
    ("POST", f"{API}/webhooks"): Recipe(lambda ids: {"json": HOOK}, own_scope=True),
    ("GET", f"{API}/webhooks"): Recipe(own_scope=True),
    ("GET", WEBHOOK): Recipe(),
    ("DELETE", WEBHOOK): Recipe(),
    ("GET", f"{WEBHOOK}/deliveries"): Recipe(),
    ("GET", f"{FLOW}/export"): Recipe(),
    ("GET", f"{API}/budget"): Recipe(own_scope=True),
    ("GET", f"{API}/audit"): Recipe(own_scope=True),
    ("GET", f"{API}/usage"): Recipe(own_scope=True),
    ("POST", f"{API}/flows/import"): Recipe(
        lambda ids: {"json": {"format": "flowboard.flow/v1", "name": "Imported"}}, own_scope=True
    ),
}
GUARDED = [ep for ep in all_endpoints() if not ep.public]


def _key(ep: Endpoint) -> tuple[str, str]:
    return ep.method, ep.path


async def _json(resp: ClientResponse, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _settled(db: Database, org: str | None = None) -> Snapshot:
    """The database once background work has stopped changing it."""
    previous = await snapshot(db, org)
    while True:
        await asyncio.sleep(0.1)
        current = await snapshot(db, org)
        if current == previous:
            return current
        previous = current


async def snapshot(db: Database, org: str | None = None) -> Snapshot:
    """Every document (of one organisation), lastUsedAt of tokens aside."""
    query = {} if org is None else {"orgId": org}
    return {
        name: [d async for d in db.db[name].find(query, {"lastUsedAt": 0}).sort("_id", 1)]
        for name in COLLECTIONS
    }


async def build_world(client: AppClient, execution: bool) -> Ids:
    """An asset, a flow (prompt p → video v, asset a) and, if asked, a cancelled run of v."""
    asset = await _json(await client.post(f"{API}/assets", **_upload({})), 201)
    video = {"prompt": "a gull", "durationSeconds": 1, "resolution": "480p"}
    body = {
        "name": "Owned",
        "nodes": [
            {"id": "p", "type": "prompt", "data": {"text": "a gull"}},
            {"id": "v", "type": "video_gen", "data": video},
            {"id": "a", "type": "asset", "data": {"assetId": asset["id"]}},
        ],
        "edges": [{"id": "e", "source": "p", "target": "v"}],
    }
    flow = await _json(await client.post(f"{API}/flows", json=body), 201)
    ids = {"flowId": flow["id"], "nodeId": "p", "edgeId": "e", "assetId": asset["id"]}
    ids["webhookId"] = (await _json(await client.post(f"{API}/webhooks", json=HOOK), 201))["id"]
    if execution:
        run = await _json(
            await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "v"}), 202
        )
        ids["executionId"] = run["id"]
        await _json(await client.post(f"{API}/executions/{run['id']}/cancel"), 200)
        async with asyncio.timeout(20):
            while (await (await client.get(f"{API}/executions/{run['id']}")).json())[
                "status"
            ] not in TERMINAL:
                await asyncio.sleep(0.05)
    return ids


async def call(who: AppClient, ep: Endpoint, ids: Ids) -> tuple[int, str]:
    """Call a route; return the status and the body (a live event stream is not read)."""
    recipe = RECIPES[_key(ep)]
    async with who.request(ep.method, ep.path.format(**ids), **recipe.body(ids)) as resp:
        if resp.content_type == "text/event-stream":
            return resp.status, ""
        return resp.status, await resp.text()


async def strangers(client: AppClient, client_as: MakeClient) -> dict[str, AppClient]:
    """Callers without a valid credential: none, a malformed one, a revoked one."""
    revoked = await client.app[AUTH].tokens.create(DEFAULT_ORG, "revoked")
    await client.app[AUTH].tokens.revoke(revoked.token.id)
    return {
        "no token": await client_as(None),
        "malformed": await client_as(None, {"Authorization": "Bearer not-a-token"}),
        "not bearer": await client_as(None, {"Authorization": f"Basic {revoked.plain}"}),
        "revoked": await client_as(None, {"Authorization": f"Bearer {revoked.plain}"}),
    }


def test_every_guarded_route_has_a_recipe() -> None:
    guarded = {_key(ep) for ep in GUARDED}
    assert guarded - set(RECIPES) == set(), "add a recipe for each new route"
    assert set(RECIPES) - guarded == set(), "a recipe names a route that is gone"


@pytest.mark.parametrize("ep", GUARDED, ids=[f"{ep.method} {ep.path}" for ep in GUARDED])
async def test_only_the_owner_may_call(
    ep: Endpoint, client: AppClient, client_as: MakeClient, other_client: AppClient
) -> None:
    assert _key(ep) in RECIPES, f"{ep.method} {ep.path}: add a recipe to RECIPES"
    recipe = RECIPES[_key(ep)]
    ids = await build_world(client, recipe.execution)
    db: Database = client.app[DATABASE]
    refused = await strangers(client, client_as)
    before = await _settled(db)
    for label, stranger in refused.items():
        status, body = await call(stranger, ep, ids)
        assert status == 401, (label, body)
        assert '"code": "unauthorized"' in body
    assert await snapshot(db) == before
    status, body = await call(other_client, ep, ids)
    if recipe.own_scope:
        assert status == ep.status, body
        assert ids["flowId"] not in body and ids["assetId"] not in body
        owners = {k: [d for d in v if d.get("orgId") == DEFAULT_ORG] for k, v in before.items()}
        assert await snapshot(db, DEFAULT_ORG) == owners
    else:
        assert status == 404, body
        assert await snapshot(db) == before
    status, body = await call(client, ep, ids)
    assert status == ep.status, body


async def test_org_comes_from_the_token_never_the_body(
    client: AppClient, other_client: AppClient
) -> None:
    resp = await other_client.post(f"{API}/flows", json={"name": "x", "orgId": DEFAULT_ORG})
    assert resp.status == 422
    mine = await _json(await other_client.post(f"{API}/flows", json={"name": "B's"}), 201)
    assert mine["orgId"] == OTHER_ORG
    page = await _json(await client.get(f"{API}/flows"), 200)
    assert page["total"] == 0
    assert (await client.get(f"{API}/flows/{mine['id']}")).status == 404


async def test_org_id_refuses_to_guess(make_settings: MakeSettings) -> None:
    app = web.Application()
    app[SETTINGS] = make_settings()
    with pytest.raises(NoPrincipal):
        org_id(make_mocked_request("GET", "/api/creative-flowboard/flows", app=app))
    app = web.Application()
    app[SETTINGS] = make_settings(auth={"enabled": False})
    assert org_id(make_mocked_request("GET", "/", app=app)) == DEFAULT_ORG


async def test_public_routes_need_no_token(client_as: MakeClient) -> None:
    anonymous = await client_as(None)
    for path in ("/healthz", "/readyz", "/metrics", "/api/openapi.json"):
        assert (await anonymous.get(path)).status == 200, path
    resp = await anonymous.get(f"{API}/flows")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await anonymous.get("/no/such/route")).status == 404
    doc = await (await anonymous.get("/api/openapi.json")).json()
    assert doc["security"] == [{"bearer": []}]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert "security" not in doc["paths"][f"{API}/flows"]["get"]


async def test_metrics_can_require_a_token(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    settings = make_settings(auth={"metrics_public": False})
    client: AppClient = await aiohttp_client(create_app(settings))
    assert (await client.get("/metrics")).status == 200
    anonymous: AppClient = await aiohttp_client(client.server, org=None, borrowed=True)
    assert (await anonymous.get("/metrics")).status == 401


# -- stream tickets -------------------------------------------------------------------


async def _ticket(client: AppClient, flow_id: str) -> str:
    body = await _json(await client.post(f"{API}/subscribe/{flow_id}/ticket"), 200)
    assert body["expiresIn"] == 60 or body["expiresIn"] >= 1
    ticket: str = body["ticket"]
    return ticket


async def _flow(client: AppClient, name: str = "Live") -> str:
    flow_id: str = (await _json(await client.post(f"{API}/flows", json={"name": name}), 201))["id"]
    return flow_id


async def test_ticket_opens_one_stream_once(
    client: AppClient, client_as: MakeClient, sse: Reader
) -> None:
    flow_id = await _flow(client)
    browser = await client_as(None)  # an EventSource: no headers at all
    ticket = await _ticket(client, flow_id)
    async with browser.get(f"{API}/subscribe/{flow_id}", params={"ticket": ticket}) as resp:
        assert resp.status == 200
        reader = sse(resp)
        assert (await reader.next())["data"]["revision"] == 1
        await client.post(f"{API}/flows/{flow_id}/nodes", json={"id": "a", "type": "prompt"})
        assert (await reader.next())["data"]["revision"] == 2
    again = await browser.get(f"{API}/subscribe/{flow_id}", params={"ticket": ticket})
    assert again.status == 401
    assert "used" in (await again.json())["error"]["message"]


async def test_ticket_is_for_one_flow_and_one_kind_of_route(
    client: AppClient, client_as: MakeClient, other_client: AppClient
) -> None:
    first, second = await _flow(client), await _flow(client, "Other")
    browser = await client_as(None)
    ticket = await _ticket(client, first)
    resp = await browser.get(f"{API}/subscribe/{second}", params={"ticket": ticket})
    assert resp.status == 401
    ticket = await _ticket(client, first)
    resp = await browser.get(f"{API}/flows/{first}", params={"ticket": ticket})
    assert resp.status == 401  # tickets open streams, nothing else
    assert (await other_client.post(f"{API}/subscribe/{first}/ticket")).status == 404


async def test_expired_ticket_is_refused(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client: AppClient = await aiohttp_client(create_app(make_settings(auth={"ticket_seconds": 1})))
    browser: AppClient = await aiohttp_client(client.server, org=None, borrowed=True)
    flow_id = await _flow(client)
    ticket = await _ticket(client, flow_id)
    await asyncio.sleep(1.1)
    resp = await browser.get(f"{API}/subscribe/{flow_id}", params={"ticket": ticket})
    assert resp.status == 401
    assert (await resp.json())["error"]["message"] == "ticket expired"


async def test_another_orgs_events_never_arrive(
    client: AppClient, other_client: AppClient, sse: Reader
) -> None:
    theirs, mine = await _flow(client, "A's"), await _flow(other_client, "B's")
    assert (await other_client.get(f"{API}/subscribe/{theirs}")).status == 404
    async with other_client.get(f"{API}/subscribe/{mine}") as resp:
        reader = sse(resp)
        assert (await reader.next())["data"]["id"] == mine
        for i in range(3):
            node = {"id": f"n{i}", "type": "prompt"}
            await _json(await client.post(f"{API}/flows/{theirs}/nodes", json=node), 201)
        await _json(await other_client.patch(f"{API}/flows/{mine}", json={"name": "B2"}), 200)
        frame = await reader.next()  # the first event after A's three is B's own
    assert frame["data"]["id"] == mine and frame["data"]["revision"] == 2


async def test_ticket_book_stays_bounded() -> None:
    now = [0.0]
    book = TicketBook(60, clock=lambda: now[0], capacity=2)
    first, second = await book.issue("o", "f1"), await book.issue("o", "f2")
    now[0] = 61.0
    third = await book.issue("o", "f3")  # full: the expired two are swept first
    assert len(book) == 1 and (await book.redeem(third, "f3")).org_id == "o"
    fourth, fifth, sixth = [await book.issue("o", f) for f in ("f4", "f5", "f6")]
    assert len(book) == 2  # nothing expired: the oldest gave way
    for ticket, flow in ((first, "f1"), (second, "f2"), (fourth, "f4")):
        with pytest.raises(Unauthenticated):
            await book.redeem(ticket, flow)
    assert (await book.redeem(fifth, "f5")).subject == "f5"
    assert await book.redeem(sixth, "f6")


# -- the CLI and secrets ----------------------------------------------------------------


async def _flowboard(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    config = tmp_path / "cli.toml"
    config.write_text(f'data_dir = "{tmp_path / "cli-data"}"\n[logging]\nlevel = "DEBUG"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowboard", "--config", str(config), "token", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_creates_lists_and_revokes_tokens(
    client: AppClient,
    client_as: MakeClient,
    mongo_server: str,
    mongo_db_name: str,
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWBOARD_")}
    env |= {"FLOWBOARD_DATABASE__URI": mongo_server, "FLOWBOARD_DATABASE__NAME": mongo_db_name}
    code, plain, err = await _flowboard(tmp_path, env, "create", "--org", "acme", "--name", "ci")
    assert code == 0, err
    plain = plain.strip()
    assert plain.startswith("fb_") and plain not in err
    token_id = err.split("created ", 1)[1].split()[0]
    caller = await client_as(None, {"Authorization": f"Bearer {plain}"})
    flow = await _json(await caller.post(f"{API}/flows", json={"name": "acme's"}), 201)
    assert flow["orgId"] == "acme"
    code, listing, err = await _flowboard(tmp_path, env, "list", "--org", "acme")
    assert code == 0, err
    rows = [line.split("\t") for line in listing.splitlines()]
    assert rows[0][:3] == ["id", "org", "name"] and rows[1][:3] == [token_id, "acme", "ci"]
    assert rows[1][-1] == "active" and plain not in listing
    doc = await client.app[DATABASE].tokens.find_one({"_id": token_id})
    assert doc is not None and plain not in str(doc) and doc["lastUsedAt"] is not None
    code, out, err = await _flowboard(tmp_path, env, "revoke", token_id)
    assert code == 0 and out.strip() == f"revoked {token_id}", err
    assert (await caller.get(f"{API}/flows/{flow['id']}")).status == 401
    code, listing, _ = await _flowboard(tmp_path, env, "list")
    assert "revoked" in listing.splitlines()[-1]
    code, _, err = await _flowboard(tmp_path, env, "revoke", "tok_nope")
    assert code == 1 and "no token" in err


async def test_token_never_logged_nor_echoed(
    client: AppClient, client_as: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issued = await client.app[AUTH].tokens.create("acme", "audit")
    caller = await client_as(None, {"Authorization": f"Bearer {issued.plain}"})
    assert (await caller.get(f"{API}/flows")).status == 200
    await client.app[AUTH].tokens.revoke(issued.token.id)
    refused = await caller.get(f"{API}/flows")
    assert refused.status == 401 and issued.plain not in await refused.text()
    bogus = "fb_" + "x" * 40
    resp = await (await client_as(None, {"Authorization": f"Bearer {bogus}"})).get(f"{API}/flows")
    assert resp.status == 401 and bogus not in await resp.text()
    assert issued.plain not in repr(issued)
    logged = [r.getMessage() + repr(r.__dict__) for r in caplog.records]
    assert logged and not [line for line in logged if issued.plain in line or bogus in line]


def test_secret_settings_never_printed() -> None:
    env = {"FLOWBOARD_AUTH__JWT_SECRET": "hunter2-secret-value"}
    settings = load_settings(environ=env)
    assert settings.auth.jwt_secret.get_secret_value() == "hunter2-secret-value"
    for dump in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2" not in dump
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"FLOWBOARD_AUTH__JWT_SECRTE": "hunter2-secret-value"})
    assert "auth.jwt_secrte" in str(caught.value) and "hunter2" not in str(caught.value)
