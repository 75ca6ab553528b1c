"""The plan of a run before it starts: what each node would do and what it would cost.

`run/{flowId}` with `dryRun: true` answers it; every real run records it as the tasks'
estimates. A node would `reuse` (an unchanged result, cost 0), `run` (ask its
provider), or `wait` (it waits for an upstream node that runs: it reuses afterwards only
if that output comes out byte-identical, so it is estimated as a run).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flowboard.assets.model import GeneratedAsset
from flowboard.canvas.model import Flow, Node
from flowboard.costs.ledger import round_cost, totals
from flowboard.costs.prices import PriceTable
from flowboard.costs.units import estimate_units
from flowboard.models.costs import TaskCost, Units
from flowboard.models.execution import Execution, Task
from flowboard.nodes.registry import NODE_TYPES
from flowboard.providers.registry import ProviderRegistry
from flowboard.runs.port import Job
from flowboard.runs.reuse import Reuse
from flowboard.schema import ApiModel

DRY_RUN = "dry-run"


class Action(StrEnum):
    RUN = "run"
    REUSE = "reuse"
    WAIT = "wait"


class PlannedNode(ApiModel):
    """One node of a plan; `reuse_asset_id` names the result it would reuse."""

    node_id: str
    node_type: str
    action: Action
    provider: str | None = None
    model: str | None = None
    units: Units = Units()
    estimated_cost: float = 0.0
    reuse_asset_id: str | None = None


class RunPlan(ApiModel):
    """What a run would do, node by node in dependency order, and its estimated cost."""

    flow_id: str
    unit: str
    nodes: list[PlannedNode]
    estimated_cost: float

    def node(self, node_id: str) -> PlannedNode | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)


@dataclass
class RunPlanner:
    """Plans runs with the price table, the providers and the reuse rule."""

    prices: PriceTable
    providers: ProviderRegistry
    reuse: Reuse

    async def plan(
        self, org_id: str, flow: Flow, plan: dict[str, list[str]], reuse: bool
    ) -> RunPlan:
        planned: dict[str, PlannedNode] = {}
        reused: dict[str, GeneratedAsset] = {}
        for node_id, deps in plan.items():
            node = flow.node(node_id)
            assert node is not None  # plans are made from this flow
            waits = any(planned[d].action is not Action.REUSE for d in deps if d in planned)
            planned[node_id], found = await self._node(org_id, flow, node, reuse, waits, reused)
            if found is not None:
                reused[node_id] = found
        total = round_cost(sum(n.estimated_cost for n in planned.values()))
        return RunPlan(
            flow_id=flow.id,
            unit=self.prices.unit,
            nodes=list(planned.values()),
            estimated_cost=total,
        )

    async def _node(
        self,
        org_id: str,
        flow: Flow,
        node: Node,
        reuse: bool,
        waits: bool,
        reused: dict[str, GeneratedAsset],
    ) -> tuple[PlannedNode, GeneratedAsset | None]:
        kind = NODE_TYPES[node.type]
        spec = kind.generation
        if spec is None:
            return PlannedNode(node_id=node.id, node_type=node.type, action=Action.RUN), None
        data = kind.data_model.model_validate(node.data)
        provider = self.providers.get(spec.provider_of(data), spec.media).name
        model = getattr(data, "model", None)
        params = data.model_dump(mode="json", by_alias=True, exclude_none=True)
        units = estimate_units(spec.media, params)
        base = PlannedNode(
            node_id=node.id,
            node_type=node.type,
            action=Action.WAIT if reuse and waits else Action.RUN,
            provider=provider,
            model=model,
            units=units,
            estimated_cost=self.prices.cost(provider, model, units),
        )
        if not reuse or waits:
            return base, None
        job = Job(org_id, DRY_RUN, flow, node, reuse=True)
        key = await self.reuse.keys.key_of(job, spec, data, provider, reused)
        found = await self.reuse.find(job, key) if key is not None else None
        if found is None:
            return base, None
        update = {
            "action": Action.REUSE,
            "units": Units(),
            "estimated_cost": 0.0,
            "reuse_asset_id": found.id,
        }
        return base.model_copy(update=update), found


def with_estimates(execution: Execution, plan: RunPlan) -> Execution:
    """The new execution with each task's estimate from the plan, and the totals."""
    tasks: dict[str, Task] = {}
    for node_id, task in execution.tasks.items():
        planned = plan.node(node_id)
        estimate = (
            TaskCost(estimated_units=planned.units, estimated=planned.estimated_cost)
            if planned is not None
            else TaskCost()
        )
        tasks[node_id] = task.model_copy(update={"cost": estimate})
    total = totals((t.cost for t in tasks.values()), plan.unit)
    return execution.model_copy(update={"tasks": tasks, "cost": total})
