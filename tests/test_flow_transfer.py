"""Flow export and import in the `flowboard.flow/v1` format, against the real app."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import FormData
from PIL import Image

from flowboard.flowdoc import FORMAT, json_schema
from tests.servers.app import AppClient

API = "/api/creative-flowboard"
DOCS = Path(__file__).resolve().parents[1] / "docs"


async def _json(resp: Any, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _upload(client: AppClient) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), (200, 40, 40)).save(buffer, "PNG")
    form = FormData()
    form.add_field("file", buffer.getvalue(), filename="i.png", content_type="image/png")
    return str((await _json(await client.post(f"{API}/assets", data=form), 201))["id"])


def _flow_body(asset_id: str) -> dict[str, Any]:
    return {
        "name": "Harbour at dusk",
        "metadata": {"team": "blue", "tags": ["a", 1]},
        "nodes": [
            {"id": "img", "type": "asset", "position": {"x": 1, "y": 2},
             "data": {"assetId": asset_id}},
            {"id": "p", "type": "prompt", "data": {"text": "boats drifting"}},
            {
                "id": "v",
                "type": "video_gen",
                "position": {"x": 300, "y": 40},
                "data": {"provider": "local", "durationSeconds": 2, "seed": 7},
            },
        ],
        "edges": [
            {"id": "e1", "source": "img", "target": "v"},
            {"id": "e2", "source": "p", "target": "v", "targetHandle": "prompt"},
        ],
    }  # fmt: skip


def _content(flow: dict[str, Any]) -> dict[str, Any]:
    return {k: flow[k] for k in ("name", "metadata", "nodes", "edges")}


async def test_export_then_import_reproduces_the_flow(client: AppClient) -> None:
    asset_id = await _upload(client)
    flow = await _json(await client.post(f"{API}/flows", json=_flow_body(asset_id)), 201)
    resp = await client.get(f"{API}/flows/{flow['id']}/export")
    document = await _json(resp, 200)
    assert document["format"] == FORMAT and document["id"] == flow["id"]
    assert "attachment" in resp.headers["Content-Disposition"]
    assert not {"orgId", "revision", "createdAt", "updatedAt"} & set(document)
    jsonschema.validate(document, json_schema())
    # As a new flow: identical nodes, edges, data, name and metadata.
    fresh = await _json(
        await client.post(f"{API}/flows/import", json={**document, "id": None}), 201
    )
    assert fresh["id"] != flow["id"] and fresh["revision"] == 1
    assert _content(fresh) == _content(flow)
    # With its id: the same flow, updated in place (one more revision).
    document["name"] = "Renamed by file"
    document["nodes"][1]["data"]["text"] = "boats at anchor"
    updated = await _json(await client.post(f"{API}/flows/import", json=document), 200)
    assert updated["id"] == flow["id"] and updated["revision"] == flow["revision"] + 1
    got = await _json(await client.get(f"{API}/flows/{flow['id']}"), 200)
    assert got["name"] == "Renamed by file" and got["nodes"][1]["data"]["text"] == "boats at anchor"
    # An unknown id of the caller's own choosing is kept (a flow file can name its flow).
    named = await _json(
        await client.post(f"{API}/flows/import", json={**document, "id": "my-harbour"}), 201
    )
    assert named["id"] == "my-harbour" and _content(named) == {**_content(got)}


async def test_export_leaves_out_capability_urls(client: AppClient) -> None:
    node = {
        "id": "out",
        "type": "generated_asset",
        "data": {"url": "/media/outputs/secret-key.mp4", "posterUrl": "/media/p.jpg"},
    }
    flow = await _json(await client.post(f"{API}/flows", json={"name": "o", "nodes": [node]}), 201)
    document = await _json(await client.get(f"{API}/flows/{flow['id']}/export"), 200)
    assert "secret-key" not in json.dumps(document)
    assert document["nodes"][0]["data"] == {"mediaType": "video"}


async def test_export_leaves_out_every_variant_url(client: AppClient) -> None:
    urls = [f"/media/outputs/variant-secret-{i}.png" for i in range(3)]
    node = {
        "id": "out",
        "type": "generated_asset",
        "data": {"url": urls[0], "urls": urls, "mediaType": "image", "assetId": "a1"},
    }
    flow = await _json(await client.post(f"{API}/flows", json={"name": "o", "nodes": [node]}), 201)
    document = await _json(await client.get(f"{API}/flows/{flow['id']}/export"), 200)
    assert "variant-secret" not in json.dumps(document)
    assert document["nodes"][0]["data"] == {"mediaType": "image", "assetId": "a1"}


async def test_import_never_trusts_another_organisations_ids(
    client: AppClient, other_client: AppClient
) -> None:
    asset_id = await _upload(client)
    flow = await _json(await client.post(f"{API}/flows", json=_flow_body(asset_id)), 201)
    document = await _json(await client.get(f"{API}/flows/{flow['id']}/export"), 200)
    # The other organisation cannot point at the owner's asset ...
    resp = await other_client.post(f"{API}/flows/import", json=document)
    body = await _json(resp, 422)
    message = body["error"]["message"]
    assert "nodes.0.data.assetId" in message and "'img'" in message
    # ... nor take over the owner's flow by naming its id: it gets a flow of its own.
    document["nodes"] = document["nodes"][1:]
    document["edges"] = [e for e in document["edges"] if e["source"] != "img"]
    theirs = await _json(await other_client.post(f"{API}/flows/import", json=document), 201)
    assert theirs["id"] != flow["id"] and theirs["orgId"] == "org-b"
    mine = await _json(await client.get(f"{API}/flows/{flow['id']}"), 200)
    assert mine == flow
    assert (await other_client.get(f"{API}/flows/{flow['id']}/export")).status == 404


async def test_bad_documents_are_422_naming_the_problem(client: AppClient) -> None:
    good = {"format": FORMAT, "name": "x", "nodes": [{"id": "a", "type": "prompt"}]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "format": "flowboard.flow/v2"}, "unsupported format version 'flowboard.flow/v2'"),
        ({**good, "format": "something/else"}, "not a Flowboard flow document"),
        ({k: v for k, v in good.items() if k != "format"}, "format: Field required"),
        ({**good, "name": ""}, "name:"),
        ({**good, "nodes": [{"id": "a", "type": "nope"}]}, "unknown node type 'nope'"),
        (
            {**good, "nodes": [{"id": "v", "type": "video_gen", "data": {"durationSeconds": 0}}]},
            "durationSeconds",
        ),
        ({**good, "edges": [{"id": "e", "source": "a", "target": "zz"}]}, "missing node 'zz'"),
        ({**good, "nodes": [{"id": "a", "type": "asset", "file": "x.png"}]}, "nodes.0.file"),
        ({**good, "surprise": 1}, "surprise"),
    ]
    for document, needle in cases:
        resp = await client.post(f"{API}/flows/import", json=document)
        body = await _json(resp, 422)
        assert needle in body["error"]["message"], (document, body)
    total = (await _json(await client.get(f"{API}/flows"), 200))["total"]
    assert total == 0  # nothing was written


def test_documented_schema_matches_the_models() -> None:
    """docs/flow.schema.json is generated from the models (`flowboard schema > ...`)."""
    documented = json.loads((DOCS / "flow.schema.json").read_text())
    generated = json_schema()
    # The document's own fields; node types' data evolve with the nodes (and the OpenAPI).
    for key in ("required", "additionalProperties"):
        assert documented.get(key) == generated.get(key), key
    fields = {k: v for k, v in generated["properties"].items() if k != "nodes"}
    assert {k: v for k, v in documented["properties"].items() if k != "nodes"} == fields
    assert set(documented["$defs"]) <= set(generated["$defs"])
    assert (DOCS / "flow-format.md").read_text().count("flowboard.flow/v1") >= 2
