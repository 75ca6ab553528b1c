"""Every URL a client can store is http(s) or a path under /media/; else 422 invalid_url."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from pymongo import AsyncMongoClient

from flowboard.config import Settings, StorageSettings
from flowboard.keys import SETTINGS
from flowboard.safe_url import url_problem
from tests.servers.app import AppClient
from tests.servers.waiting import API

BAD = [
    "javascript:alert(1)",
    " JaVaScript:alert(1)",
    "\tjavascript:alert(1)",
    "java\nscript:alert(1)",
    "JAVASCRIPT&colon;alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml;base64,PHN2Zz4=",
    "vbscript:msgbox(1)",
    "//evil.example/x.png",
    "/\\evil.example/x.png",
    "\\\\evil.example/x.png",
    "https:evil.example/x.png",
    "/media/../api/creative-flowboard/flows",
    "/media/%2e%2e/api",
    "media/x.png",
    "",
]
GOOD = ["https://cdn.example.com/a.png?x=1", "HTTP://cdn.example.com/a.png", "/media/org/a.png"]


def _node(kind: str, field: str, url: str) -> dict[str, Any]:
    value: Any = [GOOD[0], url] if field == "urls" else url
    return {"id": "n", "type": kind, "data": {field: value}}


FIELDS = [("asset", "url"), ("generated_asset", "url"), ("generated_asset", "posterUrl")]
FIELDS.append(("generated_asset", "urls"))


@pytest.mark.parametrize(("kind", "field"), FIELDS)
async def test_each_url_field_refuses_every_trick(client: AppClient, kind: str, field: str) -> None:
    flow = await (await client.post(f"{API}/flows", json={"name": "ok"})).json()
    await client.post(f"{API}/flows/{flow['id']}/nodes", json={"id": "n", "type": kind})
    for url in BAD:
        answers = [
            await client.post(
                f"{API}/flows", json={"name": "x", "nodes": [_node(kind, field, url)]}
            ),
            await client.post(f"{API}/flows/{flow['id']}/nodes", json=_node(kind, field, url)),
            await client.patch(
                f"{API}/flows/{flow['id']}/nodes/n", json={"data": _node(kind, field, url)["data"]}
            ),
        ]
        for resp in answers:
            assert resp.status == 422, (url, resp.status)
            error = (await resp.json())["error"]
            assert error["code"] == "invalid_url", (url, error)
            assert error["message"].startswith(field), error
    stored = await (await client.get(f"{API}/flows/{flow['id']}")).json()
    assert stored["revision"] == 2  # nothing written
    assert (await (await client.get(f"{API}/flows")).json())["total"] == 1


async def test_output_node_urls_of_this_server_and_http_are_kept(client: AppClient) -> None:
    data = {"url": GOOD[2], "posterUrl": GOOD[0], "urls": GOOD}
    node = {"id": "n", "type": "generated_asset", "data": data}
    resp = await client.post(f"{API}/flows", json={"name": "x", "nodes": [node]})
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["nodes"][0]["data"]["urls"] == GOOD


async def test_webhook_urls_follow_the_rule_without_media_paths(client: AppClient) -> None:
    for url in [*BAD[:-1], "/media/org/a.png"]:  # "" is refused as too short
        resp = await client.post(f"{API}/webhooks", json={"url": url})
        assert resp.status == 422, url
        error = (await resp.json())["error"]
        assert error["code"] == "invalid_url" and error["message"].startswith("url: "), error


async def test_an_older_stored_record_stays_readable(client: AppClient) -> None:
    flow = await (await client.post(f"{API}/flows", json={"name": "old"})).json()
    settings: Settings = client.app[SETTINGS]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.database.uri)
    try:
        node = {"id": "n", "type": "generated_asset", "position": {"x": 0, "y": 0}}
        node["data"] = {"url": "javascript:alert(1)", "mediaType": "image"}
        flows = mongo[settings.database.name]["flows"]
        await flows.update_one({"_id": flow["id"]}, {"$set": {"nodes": [node]}})
    finally:
        await mongo.close()
    resp = await client.get(f"{API}/flows/{flow['id']}")
    assert resp.status == 200
    assert (await resp.json())["nodes"][0]["data"]["url"] == "javascript:alert(1)"


def test_the_rule_says_why() -> None:
    assert url_problem(" javascript:x") == "holds whitespace, a control character or a backslash"
    assert url_problem("JaVaScript:x") == "scheme 'javascript' is not allowed"
    assert url_problem("//evil") == "a protocol-relative URL is not allowed"
    assert url_problem("/media/a.png", media=False) == "not an absolute http(s) URL"
    assert [url_problem(url) for url in GOOD] == [None, None, None]


def test_media_urls_the_service_makes_pass_the_rule() -> None:
    """storage.public_base_url prefixes every stored media URL: it must be http(s) too."""
    assert StorageSettings(public_base_url="https://cdn.example.com/m/").public_base_url
    for bad in ("/flowboard", "javascript:alert(1)//", " https://cdn.example.com"):
        with pytest.raises(ValidationError):
            StorageSettings(public_base_url=bad)
