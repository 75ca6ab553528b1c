"""Flow export and import in the versioned file format (`flowboard/flowdoc.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web

from flowboard.api.bodies import json_answer, read_model
from flowboard.api.endpoint import Endpoint, Param
from flowboard.api.errors import ApiError
from flowboard.api.principal import org_id
from flowboard.canvas.model import Flow, Node
from flowboard.flowdoc import FlowDocument, export_document
from flowboard.keys import ASSETS, CANVAS, ENGINE, SETTINGS
from flowboard.net.ssrf import FetchFailed, check_url
from flowboard.runs.engine import ExecutionNotFound

PREFIX = "/api/creative-flowboard"
FLOW_ID = Param("flowId", "path", required=True)


def _references(node: Node) -> Iterator[tuple[str, str, str]]:
    """(kind, field, id) of every stored object a node's data points at."""
    for key, value in node.data.items():
        if key == "executionId" and isinstance(value, str):
            yield "execution", key, value
        elif (key == "assetId" or key.endswith("AssetId")) and isinstance(value, str):
            yield "asset", key, value
        elif key.endswith("AssetIds") and isinstance(value, list):
            yield from (("asset", key, v) for v in value if isinstance(v, str))


def _invalid(index: int, node: Node, field: str, message: str) -> ApiError:
    loc = ["nodes", str(index), "data", field]
    return ApiError(
        422,
        "invalid",
        f"nodes.{index}.data.{field}: {message} (node {node.id!r})",
        [{"loc": loc, "msg": message, "type": "reference"}],
    )


async def _exists(request: web.Request, kind: str, object_id: str) -> bool:
    org = org_id(request)
    if kind == "asset":
        return await request.app[ASSETS].get(org, object_id) is not None
    try:
        await request.app[ENGINE].get(org, object_id)
    except ExecutionNotFound:
        return False
    return True


async def _check_nodes(request: web.Request, nodes: list[Node]) -> None:
    """Refuse references to objects the caller's organisation does not hold, and unsafe URLs."""
    allow = request.app[SETTINGS].network.allow
    for index, node in enumerate(nodes):
        for kind, field, object_id in _references(node):
            if not await _exists(request, kind, object_id):
                raise _invalid(index, node, field, f"no {kind} {object_id!r} in your organisation")
        url = node.data.get("url") if node.type == "asset" else None
        if url:
            try:
                await check_url(str(url), allow)
            except FetchFailed as exc:
                raise ApiError(422, "unsafe_url", f"nodes.{index}.data.url refused: {exc}") from exc


def _refuse_files(document: FlowDocument) -> None:
    for index, node in enumerate(document.nodes):
        if node.file is not None:
            raise ApiError(
                422,
                "invalid",
                f"nodes.{index}.file: a local file cannot be imported (node {node.id!r}); "
                "upload it (POST /assets) and set data.assetId, or use `flowboard run`",
                [{"loc": ["nodes", str(index), "file"], "msg": "local file", "type": "file"}],
            )


async def import_flow(request: web.Request) -> web.Response:
    document = await read_model(request, FlowDocument)
    _refuse_files(document)
    nodes = document.canvas_nodes()
    await _check_nodes(request, nodes)
    canvas, org = request.app[CANVAS], org_id(request)
    if document.id is not None and await canvas.store.get(org, document.id) is not None:

        def replace(flow: Flow) -> Flow:
            fields: dict[str, Any] = {
                "name": document.name,
                "nodes": nodes,
                "edges": document.edges,
                "metadata": document.metadata,
            }
            return flow.model_copy(update=fields)

        return json_answer(await canvas.apply(org, document.id, replace), 200)
    # Through the canvas service like any edit: size limits checked on the very document
    # inserted, so a refused import stores nothing.
    flow = await canvas.create(
        org, document.name, nodes, document.edges, document.metadata, flow_id=document.id
    )
    return json_answer(flow, 201)


async def export_flow(request: web.Request) -> web.Response:
    flow = await request.app[CANVAS].get(org_id(request), request.match_info["flowId"])
    response = json_answer(export_document(flow))
    response.headers["Content-Disposition"] = f'attachment; filename="{flow.id}.flow.json"'
    return response


def endpoints() -> list[Endpoint]:
    tag = "canvas"
    return [
        Endpoint(
            "GET",
            f"{PREFIX}/flows/{{flowId}}/export",
            export_flow,
            "Export a flow as a flowboard.flow/v1 document",
            tag,
            None,
            FlowDocument,
            params=(FLOW_ID,),
        ),
        Endpoint(
            "POST",
            f"{PREFIX}/flows/import",
            import_flow,
            "Import a flowboard.flow/v1 document (creates it, or updates the caller's flow "
            "with its id)",
            tag,
            FlowDocument,
            Flow,
            201,
        ),
    ]
