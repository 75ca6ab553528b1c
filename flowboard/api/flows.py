"""Flow, node and edge routes under /api/creative-flowboard."""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web

from flowboard import safe_url
from flowboard.api import schemas
from flowboard.api.bodies import base_revision, json_answer, query_int, read_model
from flowboard.api.endpoint import Endpoint, Param
from flowboard.api.principal import org_id
from flowboard.canvas import edits
from flowboard.canvas.model import Edge, Flow, Node
from flowboard.ids import new_id
from flowboard.keys import CANVAS, SETTINGS
from flowboard.net.ssrf import FetchFailed, UnsafeUrl, check_url

PREFIX = "/api/creative-flowboard"
FLOW_ID = Param("flowId", "path", required=True)
NODE_ID = Param("nodeId", "path", required=True)
EDGE_ID = Param("edgeId", "path", required=True)
IF_MATCH = Param("If-Match", "header", "revision the write is based on")


async def _check_urls(request: web.Request, datas: list[dict[str, Any]]) -> None:
    """Refuse node URLs that point inside the network (checked after DNS resolution)."""
    allow = request.app[SETTINGS].network.allow
    for data in datas:
        url = data.get("url")
        if not url:
            continue
        safe_url.check_url(str(url), "url")  # the rule first: invalid_url before any lookup
        try:
            await check_url(str(url), allow)
        except FetchFailed as exc:
            raise UnsafeUrl(f"url refused: {exc}") from exc


def _user_data(nodes: list[Node]) -> list[dict[str, Any]]:
    """The data of nodes whose URLs come from users (output nodes carry our own URLs)."""
    return [n.data for n in nodes if n.type == "asset"]


async def create_flow(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.FlowCreate)
    await _check_urls(request, _user_data(body.nodes))
    flow = await request.app[CANVAS].create(
        org_id(request), body.name, body.nodes, body.edges, body.metadata
    )
    return json_answer(flow, 201)


async def get_flow(request: web.Request) -> web.Response:
    flow = await request.app[CANVAS].get(org_id(request), request.match_info["flowId"])
    return json_answer(flow)


async def list_flows(request: web.Request) -> web.Response:
    offset = query_int(request, "offset", 0, 0, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 200)
    page = await request.app[CANVAS].list(org_id(request), offset, limit)
    return json_answer(
        schemas.FlowList(items=page.items, total=page.total, offset=offset, limit=limit)
    )


async def update_flow(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.FlowUpdate)
    flow = await request.app[CANVAS].apply(
        org_id(request),
        request.match_info["flowId"],
        partial(edits.set_details, name=body.name, metadata=body.metadata),
        base_revision(request, body.base_revision),
    )
    return json_answer(flow)


async def delete_flow(request: web.Request) -> web.Response:
    await request.app[CANVAS].delete(org_id(request), request.match_info["flowId"])
    return web.Response(status=204)


async def add_node(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.NodeCreate)
    node = Node(
        id=body.id or new_id("node"), type=body.type, position=body.position, data=body.data
    )
    await _check_urls(request, _user_data([node]))
    flow = await request.app[CANVAS].apply(
        org_id(request),
        request.match_info["flowId"],
        partial(edits.add_node, node=node),
        base_revision(request, body.base_revision),
    )
    return json_answer(flow, 201)


async def update_node(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.NodeUpdate)
    await _check_urls(request, [body.data or {}])
    flow = await request.app[CANVAS].apply(
        org_id(request),
        request.match_info["flowId"],
        partial(
            edits.update_node,
            node_id=request.match_info["nodeId"],
            position=body.position,
            data=body.data,
        ),
        base_revision(request, body.base_revision),
    )
    return json_answer(flow)


async def remove_node(request: web.Request) -> web.Response:
    flow = await request.app[CANVAS].apply(
        org_id(request),
        request.match_info["flowId"],
        partial(edits.remove_node, node_id=request.match_info["nodeId"]),
        base_revision(request, None),
    )
    return json_answer(flow)


async def add_edge(request: web.Request) -> web.Response:
    body = await read_model(request, schemas.EdgeCreate)
    edge = Edge(
        id=body.id or new_id("edge"),
        source=body.source,
        target=body.target,
        source_handle=body.source_handle,
        target_handle=body.target_handle,
    )
    flow = await request.app[CANVAS].apply(
        org_id(request),
        request.match_info["flowId"],
        partial(edits.add_edge, edge=edge),
        base_revision(request, body.base_revision),
    )
    return json_answer(flow, 201)


async def remove_edge(request: web.Request) -> web.Response:
    flow = await request.app[CANVAS].apply(
        org_id(request),
        request.match_info["flowId"],
        partial(edits.remove_edge, edge_id=request.match_info["edgeId"]),
        base_revision(request, None),
    )
    return json_answer(flow)


def endpoints() -> list[Endpoint]:
    flows, flow = f"{PREFIX}/flows", f"{PREFIX}/flows/{{flowId}}"
    tag = "canvas"
    return [
        Endpoint("POST", flows, create_flow, "Create a flow", tag, schemas.FlowCreate, Flow, 201),
        Endpoint(
            "GET",
            flows,
            list_flows,
            "List flows",
            tag,
            None,
            schemas.FlowList,
            params=(
                Param("offset", "query", schema_type="integer"),
                Param("limit", "query", schema_type="integer"),
            ),
        ),
        Endpoint("GET", flow, get_flow, "Get a flow", tag, None, Flow, params=(FLOW_ID,)),
        Endpoint(
            "PATCH",
            flow,
            update_flow,
            "Rename or update metadata",
            tag,
            schemas.FlowUpdate,
            Flow,
            params=(FLOW_ID, IF_MATCH),
        ),
        Endpoint("DELETE", flow, delete_flow, "Delete a flow", tag, status=204, params=(FLOW_ID,)),
        Endpoint(
            "POST",
            f"{flow}/nodes",
            add_node,
            "Add a node",
            tag,
            schemas.NodeCreate,
            Flow,
            201,
            params=(FLOW_ID, IF_MATCH),
        ),
        Endpoint(
            "PATCH",
            f"{flow}/nodes/{{nodeId}}",
            update_node,
            "Move or edit a node",
            tag,
            schemas.NodeUpdate,
            Flow,
            params=(FLOW_ID, NODE_ID, IF_MATCH),
        ),
        Endpoint(
            "DELETE",
            f"{flow}/nodes/{{nodeId}}",
            remove_node,
            "Remove a node and its edges",
            tag,
            None,
            Flow,
            params=(FLOW_ID, NODE_ID, IF_MATCH),
        ),
        Endpoint(
            "POST",
            f"{flow}/edges",
            add_edge,
            "Add an edge",
            tag,
            schemas.EdgeCreate,
            Flow,
            201,
            params=(FLOW_ID, IF_MATCH),
        ),
        Endpoint(
            "DELETE",
            f"{flow}/edges/{{edgeId}}",
            remove_edge,
            "Remove an edge",
            tag,
            None,
            Flow,
            params=(FLOW_ID, EDGE_ID, IF_MATCH),
        ),
    ]
