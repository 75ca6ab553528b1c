"""A node type and a provider added from test code alone: run end to end, in OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowboard.app import create_app
from tests.servers.app import AppClient, MakeSettings
from tests.servers.waiting import API, wait_execution

PLUGIN = "tests.throwaway_plugin"


async def plugin_client(aiohttp_client: Callable[..., Any], make_settings: MakeSettings) -> Any:
    settings = make_settings(plugins=[PLUGIN], providers={"stamp": {"suffix": "?"}})
    return await aiohttp_client(create_app(settings))


async def _flow(client: AppClient, prompt: str, copies: int, own: str = "") -> dict[str, Any]:
    nodes = [
        {"id": "p", "type": "prompt", "data": {"text": prompt}},
        {"id": "s", "type": "test_stamp", "data": {"copies": copies, "prompt": own}},
    ]
    edges = [{"id": "ps", "source": "p", "target": "s"}]
    body = {"name": "plugin", "nodes": nodes, "edges": edges}
    flow: dict[str, Any] = await (await client.post(f"{API}/flows", json=body)).json()
    return flow


async def _run_stamp(client: AppClient, flow_id: str) -> dict[str, Any]:
    """Run the flow's stamp node `s` to its end; return its take's asset."""
    started = await client.post(f"{API}/run-node", json={"flowId": flow_id, "nodeId": "s"})
    assert started.status == 202, await started.text()
    done = await wait_execution(client, (await started.json())["id"])
    task = done["tasks"]["s"]
    assert done["status"] == "COMPLETED", task
    asset: dict[str, Any] = await (await client.get(f"{API}/assets/{task['outputAssetId']}")).json()
    return asset


async def test_plugin_node_type_runs_on_plugin_provider(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client = await plugin_client(aiohttp_client, make_settings)
    flow = await _flow(client, "hello", copies=2)
    asset = await _run_stamp(client, flow["id"])
    assert (asset["type"], asset["provider"], asset["workflow"]) == (
        "image",
        "stamp",
        "text-to-image",
    )
    assert len(asset["outputs"]) == 2
    for output in asset["outputs"]:
        assert await (await client.get(output["url"])).read() == b"HELLO?"
    final = await (await client.get(f"{API}/flows/{flow['id']}")).json()
    shown = [n for n in final["nodes"] if n["type"] == "generated_asset"]
    assert len(shown) == 1 and shown[0]["data"]["urls"] == [o["url"] for o in asset["outputs"]]


async def test_plugin_provider_validation_is_a_422_and_types_are_in_openapi(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client = await plugin_client(aiohttp_client, make_settings)
    flow = await _flow(client, "words", copies=1, own="forbidden")
    refused = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "s"})
    assert refused.status == 422
    assert (await refused.json())["error"]["code"] == "invalid_request"
    executions = await (await client.get(f"{API}/flows/{flow['id']}/executions")).json()
    assert executions["total"] == 0  # refused before anything was written
    document = await (await client.get("/api/openapi.json")).json()
    schema = document["components"]["schemas"]["StampNodeData"]
    assert set(schema["properties"]) == {"prompt", "copies"}


async def test_plugin_input_node_type_feeds_its_text_to_a_generation(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    plugins = [PLUGIN, "tests.text_file_plugin"]
    settings = make_settings(plugins=plugins, providers={"stamp": {"suffix": "?"}})
    client = await aiohttp_client(create_app(settings))
    nodes = [
        {"id": "f", "type": "text_file", "data": {"name": "notes.txt", "content": "tide"}},
        {"id": "s", "type": "test_stamp", "data": {"copies": 2}},
    ]
    body = {
        "name": "text file",
        "nodes": nodes,
        "edges": [{"id": "fs", "source": "f", "target": "s"}],
    }
    flow = await (await client.post(f"{API}/flows", json=body)).json()
    asset = await _run_stamp(client, flow["id"])
    for output in asset["outputs"]:
        assert await (await client.get(output["url"])).read() == b"TIDE?"
    # The text is an input of the content key: other content, another key.
    edit = {"data": {"name": "notes.txt", "content": "ebb"}}
    changed = await client.patch(f"{API}/flows/{flow['id']}/nodes/f", json=edit)
    assert changed.status == 200, await changed.text()
    other = await _run_stamp(client, flow["id"])
    assert other["contentKey"] != asset["contentKey"]
    assert await (await client.get(other["outputs"][0]["url"])).read() == b"EBB?"
