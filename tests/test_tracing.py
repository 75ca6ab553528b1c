"""Traces: one run-node request is one trace at a real OTLP/HTTP receiver; off costs nothing."""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from flowboard.app import create_app
from flowboard.log import JsonFormatter
from tests.fakes.veo import FakeVeo
from tests.servers.app import AppClient, MakeSettings
from tests.servers.waiting import wait_execution
from tests.test_run_node import API, lighthouse_flow
from tests.test_veo_e2e import fake, left_for_resume, veo_client

__all__ = ["fake"]  # the Veo fake's fixture


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as the receiver decoded it (ids in hex, as in logs)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    service: str
    attributes: dict[str, Any]


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver: POST /v1/traces, protobuf ExportTraceServiceRequest."""

    spans: list[ReceivedSpan] = field(default_factory=list)

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        export.ParseFromString(body)
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            service=str(resource.get("service.name")),
                            attributes=_attributes(span.attributes),
                        )
                    )
        return web.Response(body=b"", content_type="application/x-protobuf")


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@pytest.fixture
def json_log() -> Iterator[list[dict[str, Any]]]:
    """Every log line of the test, as the JSON formatter writes it."""
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Collect(logging.INFO)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    """A receiver on loopback, named by OTEL_EXPORTER_OTLP_ENDPOINT for apps made after."""
    received = Receiver()
    collector = web.Application()
    collector.router.add_post("/v1/traces", received.traces)
    server = TestServer(collector, host="127.0.0.1")
    await server.start_server()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", str(server.make_url("/")))
    monkeypatch.setenv("OTEL_SERVICE_NAME", "flowboard-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    yield received
    await server.close()


async def test_a_run_node_request_is_one_trace(
    receiver: Receiver,
    aiohttp_client: Callable[..., Any],
    make_settings: MakeSettings,
    json_log: list[dict[str, Any]],
) -> None:
    client: AppClient = await aiohttp_client(create_app(make_settings()))
    flow = await lighthouse_flow(client, durationSeconds=1)
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "vid"})
    assert resp.status == 202, await resp.text()
    execution = await wait_execution(client, (await resp.json())["id"])
    assert execution["status"] == "COMPLETED", execution
    await client.close()  # the app's cleanup exports what is still buffered
    _check_trace(receiver.spans, execution, flow["id"], json_log)


async def test_a_job_resumed_after_a_restart_continues_the_request_trace(
    receiver: Receiver,
    aiohttp_client: Callable[..., Any],
    make_settings: MakeSettings,
    fake: FakeVeo,
) -> None:
    started = await left_for_resume(aiohttp_client, make_settings, fake)
    second = await veo_client(aiohttp_client, make_settings, fake, "gemini")
    done = await wait_execution(second, started["id"], timeout=30)
    assert done["tasks"]["v"]["status"] == "COMPLETED"
    await second.close()
    (request,) = [s for s in receiver.spans if s.name.endswith("/run-node")]
    jobs = [s for s in receiver.spans if s.name == "flowboard.job"]
    assert len(jobs) == 2 and all(j.trace_id == request.trace_id for j in jobs), jobs
    assert {j.parent_id for j in jobs} == {request.span_id}  # both from the stored traceparent
    starts = [s for s in receiver.spans if s.name == "provider.start"]
    follows = [s for s in receiver.spans if s.name == "provider.follow"]
    assert len(starts) == 1 and len(follows) == 2  # the resumed job follows, never restarts
    # The SDK's own HTTP calls (the start, every poll) are client spans inside the jobs.
    calls = [
        s for s in receiver.spans if str(s.attributes.get("http.url")).startswith(fake.base_url)
    ]
    job_ids = {j.span_id for j in jobs} | {s.span_id for s in starts + follows}
    assert len(calls) >= 3 and all(c.parent_id in job_ids for c in calls), calls


def _check_trace(
    spans: list[ReceivedSpan],
    execution: dict[str, Any],
    flow_id: str,
    log: list[dict[str, Any]],
) -> None:
    asset_id = execution["tasks"]["vid"]["outputAssetId"]
    request = [s for s in spans if s.name == "POST /api/creative-flowboard/run-node"]
    assert len(request) == 1, sorted({s.name for s in spans})
    trace_id = request[0].trace_id
    trace = [s for s in spans if s.trace_id == trace_id]
    by_name: dict[str, list[ReceivedSpan]] = {}
    for span in trace:
        by_name.setdefault(span.name, []).append(span)
    ids = {
        "flowboard.flow_id": flow_id,
        "flowboard.execution_id": execution["id"],
        "flowboard.node_id": "vid",
        "flowboard.asset_id": asset_id,
    }
    (job,) = by_name["flowboard.job"]
    assert job.parent_id == request[0].span_id  # the background job continues the request
    assert ids.items() <= job.attributes.items()
    for name in ("provider.start", "provider.follow"):
        (call,) = by_name[name]
        assert ids.items() <= call.attributes.items() and call.attributes["flowboard.provider"]
    puts = by_name["storage.put"]
    assert any(s.attributes["storage.key"].startswith(f"videos/{asset_id}/") for s in puts), puts
    database = [s for s in trace if s.attributes.get("db.system") == "mongodb"]
    assert any(s.parent_id == job.span_id for s in database)  # the job's own writes
    assert any(s.parent_id == request[0].span_id for s in database)  # the request's
    assert {s.service for s in trace} == {"flowboard-test"}
    traced_lines = [line for line in log if line.get("trace_id") == trace_id]
    assert traced_lines, [line["msg"] for line in log]
    assert all(len(line["span_id"]) == 16 for line in traced_lines)


_STARTUP_MODULES = """
import asyncio, json, logging, sys
from aiohttp import web
from flowboard.app import create_app
from flowboard.config import load_settings
from flowboard.log import JsonFormatter

async def main() -> None:
    runner = web.AppRunner(create_app(load_settings(None)))
    await runner.setup()
    try:
        record = logging.makeLogRecord({"msg": "a line"})
        line = json.loads(JsonFormatter().format(record))
        loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
        print(json.dumps([loaded, "trace_id" in line]))
    finally:
        await runner.cleanup()

asyncio.run(main())
"""


def test_without_an_endpoint_tracing_is_not_set_up(
    tmp_path: Path, mongo_server: str, mongo_db_name: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWBOARD_", "OTEL_"))}
    env.update(
        FLOWBOARD_DATA_DIR=str(tmp_path / "data"),
        FLOWBOARD_DATABASE__URI=mongo_server,
        FLOWBOARD_DATABASE__NAME=mongo_db_name,
    )
    done = subprocess.run(
        [sys.executable, "-c", _STARTUP_MODULES],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    loaded, traced = json.loads(done.stdout.strip().splitlines()[-1])
    assert not [name for name in loaded if name.startswith("opentelemetry.sdk")], loaded
    assert not [name for name in loaded if name.startswith("opentelemetry.instrumentation")]
    assert traced is False
