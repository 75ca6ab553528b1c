"""Run endpoints and execution state."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from flowboard.api.bodies import json_answer, query_int, read_model
from flowboard.api.endpoint import Endpoint, Param
from flowboard.api.flows import FLOW_ID, PREFIX
from flowboard.api.principal import org_id
from flowboard.ids import Id
from flowboard.keys import ENGINE
from flowboard.models.execution import Execution
from flowboard.runs.planner import RunPlan
from flowboard.schema import ApiModel

EXECUTION_ID = Param("executionId", "path", required=True)
IDEMPOTENCY_KEY = Param("Idempotency-Key", "header", "same key within 24 h = same execution")


class RunNodeRequest(ApiModel):
    flow_id: Id
    node_id: Id
    client_request_id: str | None = Field(default=None, min_length=1, max_length=128)
    # Another take by default; true: end at once with an unchanged earlier result.
    reuse: bool = False


class RunFlowRequest(ApiModel):
    client_request_id: str | None = Field(default=None, min_length=1, max_length=128)
    force: bool = False  # regenerate every node instead of reusing unchanged results
    # Run only these nodes and what they need (their runnable ancestors).
    targets: list[Id] | None = Field(default=None, min_length=1, max_length=1000)
    # Answer the plan (run / reuse / wait per node, estimated cost) and start nothing.
    dry_run: bool = False


class CancelRequest(ApiModel):
    node_id: Id | None = None


class ExecutionList(ApiModel):
    items: list[Execution]
    total: int
    offset: int
    limit: int


def _request_id(request: web.Request, body_value: str | None) -> str | None:
    return request.headers.get("Idempotency-Key") or body_value


async def run_node(request: web.Request) -> web.Response:
    body = await read_model(request, RunNodeRequest)
    execution = await request.app[ENGINE].run_node(
        org_id(request),
        body.flow_id,
        body.node_id,
        _request_id(request, body.client_request_id),
        reuse=body.reuse,
    )
    return json_answer(execution, 202)


async def run_flow(request: web.Request) -> web.Response:
    body = await read_model(request, RunFlowRequest) if request.can_read_body else RunFlowRequest()
    if body.dry_run:
        plan = await request.app[ENGINE].plan_flow(
            org_id(request), request.match_info["flowId"], body.force, body.targets
        )
        return json_answer(plan)
    execution = await request.app[ENGINE].run_flow(
        org_id(request),
        request.match_info["flowId"],
        _request_id(request, body.client_request_id),
        force=body.force,
        targets=body.targets,
    )
    return json_answer(execution, 202)


async def get_execution(request: web.Request) -> web.Response:
    execution = await request.app[ENGINE].get(org_id(request), request.match_info["executionId"])
    return json_answer(execution)


async def list_executions(request: web.Request) -> web.Response:
    offset = query_int(request, "offset", 0, 0, 1_000_000)
    limit = query_int(request, "limit", 50, 1, 200)
    items, total = await request.app[ENGINE].list_for_flow(
        org_id(request), request.match_info["flowId"], offset, limit
    )
    return json_answer(ExecutionList(items=items, total=total, offset=offset, limit=limit))


async def cancel_execution(request: web.Request) -> web.Response:
    body = await read_model(request, CancelRequest) if request.can_read_body else CancelRequest()
    execution = await request.app[ENGINE].cancel(
        org_id(request), request.match_info["executionId"], body.node_id
    )
    return json_answer(execution)


async def retry_execution(request: web.Request) -> web.Response:
    execution = await request.app[ENGINE].retry(org_id(request), request.match_info["executionId"])
    return json_answer(execution, 202)


def endpoints() -> list[Endpoint]:
    tag = "execution"
    executions = f"{PREFIX}/executions/{{executionId}}"
    return [
        Endpoint(
            "POST",
            f"{PREFIX}/run-node",
            run_node,
            "Run one node (answers at once)",
            tag,
            RunNodeRequest,
            Execution,
            202,
            params=(IDEMPOTENCY_KEY,),
            rate_limited=True,
            needs_space=True,
            also=((402, None, "The estimate is more than the budget has left (budget_exceeded)"),),
        ),
        Endpoint(
            "POST",
            f"{PREFIX}/run/{{flowId}}",
            run_flow,
            "Run a whole flow in dependency order",
            tag,
            RunFlowRequest,
            Execution,
            202,
            params=(FLOW_ID, IDEMPOTENCY_KEY),
            rate_limited=True,
            needs_space=True,
            also=(
                (200, RunPlan, "dryRun: the plan and its estimated cost; nothing started"),
                (402, None, "The estimate is more than the budget has left (budget_exceeded)"),
            ),
        ),
        Endpoint(
            "GET",
            executions,
            get_execution,
            "Get an execution",
            tag,
            None,
            Execution,
            params=(EXECUTION_ID,),
        ),
        Endpoint(
            "GET",
            f"{PREFIX}/flows/{{flowId}}/executions",
            list_executions,
            "List a flow's executions",
            tag,
            None,
            ExecutionList,
            params=(FLOW_ID,),
        ),
        Endpoint(
            "POST",
            f"{executions}/cancel",
            cancel_execution,
            "Cancel a run (or one node of it)",
            tag,
            CancelRequest,
            Execution,
            params=(EXECUTION_ID,),
        ),
        Endpoint(
            "POST",
            f"{executions}/retry",
            retry_execution,
            "Re-run the failed and cancelled nodes (and what is downstream)",
            tag,
            None,
            Execution,
            202,
            params=(EXECUTION_ID,),
            rate_limited=True,
            needs_space=True,
        ),
    ]
