"""Schemathesis against the OpenAPI document of a real `flowboard serve`, with a valid token."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import APIOperation, Case, GenerationMode, Response

from tests.servers.app import AppClient
from tests.servers.serve_process import ServeProcess
from tests.servers.waiting import API

# Cases per operation and pass (see _passes): about 300 calls in all, ~15 s.
EXAMPLES = 6
# A stream (text/event-stream) never ends, so it cannot be called like the other routes.
EXCLUDED = {("GET", f"{API}/subscribe/{{flowId}}")}
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE

IdSource = Callable[[], dict[str, str]]
Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]


@dataclass
class Findings:
    """What the run found.

    calls: requests made, per operation label.
    problems: one line per distinct wrong answer ("METHOD path -> status": what is wrong).
    """

    calls: dict[str, int] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


class Api:
    """Plain calls to the server under test, as the test's token."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.headers = headers
        self.session = requests.Session()
        self.session.headers.update(headers)

    def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        resp = self.session.post(f"{self.base_url}{API}{path}", timeout=10, **kwargs)
        assert resp.status_code < 300, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def flow(self) -> dict[str, str]:
        """A flow whose run fails at once (its video's input asset is missing)."""
        video = {"prompt": "a cat", "durationSeconds": 2, "resolution": "480p"}
        nodes = [
            {"id": "img", "type": "asset", "data": {"assetId": "asset_missing"}},
            {"id": "v", "type": "video_gen", "data": video},
        ]
        edges = [{"id": "e", "source": "img", "target": "v"}]
        flow = self.post("/flows", json={"name": "st", "nodes": nodes, "edges": edges})
        return {"flowId": flow["id"], "nodeId": "v", "edgeId": "e"}

    def failed_execution(self, flow_id: str) -> str:
        execution_id: str = self.post(f"/run/{flow_id}")["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            url = f"{self.base_url}{API}/executions/{execution_id}"
            if self.session.get(url, timeout=10).json()["status"] == "FAILED":
                return execution_id
            time.sleep(0.05)
        raise AssertionError(f"execution {execution_id} did not fail")

    def asset(self) -> dict[str, str]:
        png = io.BytesIO()
        Image.new("RGB", (8, 8), "red").save(png, "PNG")
        asset = self.post("/assets", files={"file": ("red.png", png.getvalue(), "image/png")})
        return {"assetId": asset["id"], "key": asset["url"].removeprefix("/media/")}

    def ids(self, shared: dict[str, str]) -> dict[str, str]:
        """Fresh objects an operation may delete, plus the shared execution and asset."""
        hook = self.post("/webhooks", json={"url": "http://127.0.0.1:9/hook"})
        return {**shared, **self.flow(), "webhookId": hook["id"]}


def _token(serve: ServeProcess) -> str:
    """A token of the default organisation, made with the CLI on the server's database."""
    command = [sys.executable, "-m", "flowboard", "token", "create"]
    done = subprocess.run(
        [*command, "--org", "default", "--name", "schemathesis"],
        env=serve.env,
        cwd=serve.cwd,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout.decode().strip()


def _error_shape_problem(response: Response) -> str | None:
    """What is wrong with an error answer's body, if anything."""
    content_type = response.headers.get("content-type", [""])[0]
    if not content_type.startswith("application/json"):
        return None
    try:
        body = response.json()
    except ValueError:
        return "body is not valid JSON although declared so"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(error, dict):
        return f"not the error shape: {response.text[:200]}"
    if set(error) != {"code", "message", "details"}:
        return f"error keys {sorted(error)}"
    if not isinstance(error["code"], str) or not isinstance(error["message"], str):
        return f"code/message not strings: {response.text[:200]}"
    return None


def _check(case: AnyCase, response: Response, findings: Findings) -> None:
    label = f"{case.operation.method.upper()} {case.operation.path}"
    findings.calls[label] = findings.calls.get(label, 0) + 1
    problem = None
    if response.status_code >= 500:
        problem = f"server error: {response.text[:200]}"
    elif response.status_code >= 400:
        problem = _error_shape_problem(response)
    if problem is not None:
        key = f"{label} -> {response.status_code}"
        findings.problems.setdefault(key, f"{problem}\n    {case.as_curl_command()}")


def _passes(operation: Operation) -> list[tuple[GenerationMode, bool]]:
    """(mode, with real path ids): random ids mostly meet 404, real ones reach the logic."""
    if not list(operation.path_parameters):
        return [(POSITIVE, False), (NEGATIVE, False)]
    return [(POSITIVE, False), (POSITIVE, True), (NEGATIVE, True)]


def _explore(operation: Operation, api: Api, ids: IdSource, findings: Findings) -> None:
    """Call one operation with a few generated cases per pass; record what is wrong."""
    names = {param.name for param in operation.path_parameters}
    for mode, real in _passes(operation):
        fixed = {k: v for k, v in ids().items() if k in names} if real else None

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def explore(case: AnyCase) -> None:
            response = case.call(
                base_url=api.base_url, session=api.session, headers=api.headers, timeout=10
            )
            _check(case, response, findings)

        try:
            explore()
        except Unsatisfiable:
            if mode is POSITIVE:
                raise
            # nothing of this operation can be made invalid (no parameters, no body)


def _operations(base_url: str) -> list[Operation]:
    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json", timeout=10)
    # The token is sent with every call; cases spent on forged credentials find nothing new.
    schema.config.generation.update(with_security_parameters=False)
    found = [schema[path][method] for path in schema for method in schema[path]]
    return [op for op in found if (op.method.upper(), op.path) not in EXCLUDED]


@pytest.mark.slow
def test_no_5xx_and_every_error_has_the_json_shape(serve_process: ServeProcess) -> None:
    serve_process.env.update(
        {
            "FLOWBOARD_AUTH__ENABLED": "true",
            # Hundreds of run requests from one token: the limit is not what is tested here.
            "FLOWBOARD_RATELIMIT__BURST": "1000000",
            # The seeded webhook points at a closed local port (deliveries just fail).
            "FLOWBOARD_NETWORK__ALLOW": "127.0.0.1",
        }
    )
    serve_process.start()
    api = Api(serve_process.url, {"Authorization": f"Bearer {_token(serve_process)}"})
    shared = {"executionId": api.failed_execution(api.flow()["flowId"]), **api.asset()}
    findings = Findings()
    started = time.monotonic()
    for operation in _operations(serve_process.url):
        _explore(operation, api, lambda: api.ids(shared), findings)
    total, seconds = sum(findings.calls.values()), time.monotonic() - started
    log = serve_process.log.read_text(errors="replace")
    assert not findings.problems, json.dumps(findings.problems, indent=1)
    assert 200 <= total <= 600 and len(findings.calls) >= 25, (total, seconds, findings.calls)
    assert "Traceback" not in log and '"unhandled error"' not in log


# What the run (and probes of the same generated inputs) found, pinned as plain tests.


async def test_openapi_paths_use_plain_parameter_names(client: AppClient) -> None:
    paths = (await (await client.get("/api/openapi.json")).json())["paths"]
    assert "/media/{key}" in paths and not [p for p in paths if ":" in p]


async def test_metadata_the_database_cannot_store_is_a_422(client: AppClient) -> None:
    for metadata in ({"a\u0000b": 1}, {"n": [{"big": 2**63}]}, {"n": -(2**63) - 1}):
        resp = await client.post(f"{API}/flows", json={"name": "m", "metadata": metadata})
        assert resp.status == 422 and (await resp.json())["error"]["code"] == "invalid"
    flow = await (await client.post(f"{API}/flows", json={"name": "m"})).json()
    resp = await client.patch(f"{API}/flows/{flow['id']}", json={"metadata": {"x": 2**64}})
    assert resp.status == 422
    edge = {"$set": {"a.b": [2**63 - 1, -(2**63)]}}
    resp = await client.patch(f"{API}/flows/{flow['id']}", json={"metadata": edge})
    assert resp.status == 200 and (await resp.json())["metadata"] == edge


async def test_revision_outside_ascii_digits_or_64_bits_is_a_400(client: AppClient) -> None:
    flow = await (await client.post(f"{API}/flows", json={"name": "r"})).json()
    url = f"{API}/flows/{flow['id']}"
    for header, query in (({"If-Match": "9" * 5000}, {}), ({}, {"baseRevision": "\u00b2"})):
        resp = await client.patch(url, json={"name": "s"}, headers=header, params=query)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_revision"


async def test_webhook_url_with_an_impossible_host_name_is_a_422(client: AppClient) -> None:
    for host in ("b" * 64 + ".example", "a..example", ".example"):
        resp = await client.post(f"{API}/webhooks", json={"url": f"http://{host}/hook"})
        assert resp.status == 422 and (await resp.json())["error"]["code"] == "unsafe_url"
