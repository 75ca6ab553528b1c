"""GET /subscribe/{flowId}: the flow's live events over Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import hdrs, web
from aiohttp_sse import EventSourceResponse

from flowboard.api.bodies import json_answer
from flowboard.api.endpoint import Endpoint, Param
from flowboard.api.flows import PREFIX
from flowboard.api.principal import org_id
from flowboard.canvas.model import Flow
from flowboard.canvas.service import FlowNotFound, sync_json
from flowboard.keys import AUTH, CANVAS, HUB, SETTINGS
from flowboard.schema import ApiModel
from flowboard.server import closed_future
from flowboard.streams.hub import FlowChannel, Sink, StreamEventType, sse_frame

_LOGGER = logging.getLogger(__name__)


class StreamTicket(ApiModel):
    """A single-use ticket for `GET /subscribe/{flowId}?ticket=…` (EventSource sends no headers)."""

    ticket: str
    expires_in: int


async def _send_snapshot(
    request: web.Request, resp: EventSourceResponse, channel: FlowChannel, flow: Flow | None
) -> int:
    """Send the current flow as one SYNC_CANVAS; return the cursor it stands for."""
    cursor = channel.seq
    if flow is None:
        flow = await request.app[CANVAS].get(org_id(request), channel.flow_id)
    data = sync_json(flow)
    await resp.write(sse_frame(f"{channel.epoch}.{cursor}", StreamEventType.SYNC_CANVAS, data))
    return cursor


async def _start(
    request: web.Request, resp: EventSourceResponse, channel: FlowChannel, flow: Flow
) -> int:
    """Replay what a reconnecting client missed, or send a snapshot."""
    header = request.headers.get("Last-Event-ID") or request.query.get("lastEventId")
    last = channel.parse_last_event_id(header)
    missed = None if last is None else await request.app[HUB].missed(channel, last)
    if last is None or missed is None:
        return await _send_snapshot(request, resp, channel, flow)
    for item in missed:
        await resp.write(item.frame)
    return missed[-1].seq if missed else last


async def _catch_up(
    request: web.Request, resp: EventSourceResponse, channel: FlowChannel, sink: Sink
) -> bool:
    """Write what the sink has not seen; False once the flow is deleted."""
    events = channel.since(sink.cursor)
    if events is None:  # fell behind the buffer: catch up with a snapshot
        sink.cursor = await _send_snapshot(request, resp, channel, None)
        return True
    for item in events:
        await resp.write(item.frame)
        sink.cursor = item.seq
        if item.event is StreamEventType.FLOW_DELETED:
            return False
    return True


async def _follow(
    request: web.Request, resp: EventSourceResponse, channel: FlowChannel, sink: Sink
) -> None:
    """Stay idle while the channel pushes to us; catch up when woken; leave at once
    when the connection closes (the guard's notice; else the next heartbeat's write)."""
    pinged_out = asyncio.ensure_future(resp.wait())
    lost = closed_future(request.transport)
    ended = {pinged_out} if lost is None else {pinged_out, lost}
    try:
        while not any(f.done() for f in ended) and not channel.closed:
            if sink.cursor == channel.seq:
                woken = sink.wait()
                await asyncio.wait({woken, *ended}, return_when=asyncio.FIRST_COMPLETED)
                sink.idle = False
            elif not await _catch_up(request, resp, channel, sink):
                return
    finally:
        pinged_out.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pinged_out


async def subscribe(request: web.Request) -> web.StreamResponse:
    flow_id = request.match_info["flowId"]
    # The channel first: changes from here on are kept for us, so the flow read next
    # (the snapshot) misses nothing.
    hub = request.app[HUB]
    channel = await hub.open(flow_id)
    try:
        flow = await request.app[CANVAS].get(org_id(request), flow_id)  # 404 before streaming
    except FlowNotFound:
        hub.forget_unused(flow_id)
        raise
    heartbeat = request.app[SETTINGS].sse.heartbeat_seconds
    resp = EventSourceResponse(ping_interval=heartbeat)
    # The channel writes whole frames (as HTTP chunks when the response is chunked) to
    # this transport; SSE is never compressed.
    sink = channel.attach(None, channel.seq)
    try:
        await resp.prepare(request)
        async with resp:
            sink.cursor = await _start(request, resp, channel, flow)
            sink.chunked = "chunked" in resp.headers.get(hdrs.TRANSFER_ENCODING, "").lower()
            sink.transport = request.transport
            await _follow(request, resp, channel, sink)
    except (ConnectionResetError, TimeoutError):
        _LOGGER.debug("subscriber gone", extra={"flow_id": flow_id})
    except FlowNotFound:
        _LOGGER.info("flow deleted while streaming", extra={"flow_id": flow_id})
    finally:
        channel.detach(sink)
    return resp


async def create_ticket(request: web.Request) -> web.Response:
    flow_id = request.match_info["flowId"]
    org = org_id(request)
    await request.app[CANVAS].get(org, flow_id)  # another organisation's flow is a 404
    book = request.app[AUTH].tickets
    ticket = await book.issue(org, flow_id)
    return json_answer(StreamTicket(ticket=ticket, expires_in=int(book.lifetime)))


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "POST",
            f"{PREFIX}/subscribe/{{flowId}}/ticket",
            create_ticket,
            "A single-use ticket to open the flow's event stream without headers",
            "streams",
            response=StreamTicket,
            params=(Param("flowId", "path", required=True),),
        ),
        Endpoint(
            "GET",
            f"{PREFIX}/subscribe/{{flowId}}",
            subscribe,
            "Live events of a flow (text/event-stream: SYNC_CANVAS, CANVAS_PATCH, "
            "EXECUTION_UPDATE, FLOW_DELETED)",
            "streams",
            params=(
                Param("flowId", "path", required=True),
                Param("Last-Event-ID", "header", "resume after this event id"),
                Param("ticket", "query", "single-use stream ticket instead of Authorization"),
            ),
            content_type="text/event-stream",
            accepts_ticket=True,
        ),
    ]
