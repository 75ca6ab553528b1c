"""A take of a generation node: its asset record, and showing it once finished."""

from __future__ import annotations

import logging
from typing import Any

from flowboard.assets.model import AssetStatus, GeneratedAsset
from flowboard.assets.output import new_prefix
from flowboard.canvas.limits import FlowTooLarge
from flowboard.canvas.model import Flow
from flowboard.canvas.service import CanvasService, FlowNotFound
from flowboard.ids import new_id, utcnow
from flowboard.nodes.kind import GenerationSpec
from flowboard.runs.inputs import has_image_input
from flowboard.runs.output_node import show_take
from flowboard.runs.port import Job

_LOGGER = logging.getLogger(__name__)


def new_asset(job: Job, spec: GenerationSpec, data: Any, provider: str) -> GeneratedAsset:
    """The PROCESSING asset record of a new take of this job (not yet written)."""
    now = utcnow()
    asset_id = new_id("asset")
    return GeneratedAsset(
        id=asset_id,
        org_id=job.org_id,
        flow_id=job.flow.id,
        node_id=job.node.id,
        execution_id=job.execution_id,
        type=spec.asset_type,
        provider=provider,
        workflow=spec.workflow(data, has_image_input(job)),
        prompt=str(getattr(data, "prompt", "") or ""),
        parameters=data.model_dump(mode="json", by_alias=True, exclude_none=True),
        status=AssetStatus.PROCESSING,
        storage_prefix=new_prefix(asset_id),
        created_at=now,
        updated_at=now,
    )


async def show_on_canvas(
    canvas: CanvasService, org_id: str, flow_id: str, asset: GeneratedAsset
) -> None:
    """Show the finished take on the source node's output node (added the first time)."""

    def edit(flow: Flow) -> Flow:
        return show_take(flow, asset) or flow  # the same flow: nothing is written

    ids = {"asset_id": asset.id, "flow_id": flow_id, "node_id": asset.node_id}
    try:
        await canvas.apply(org_id, flow_id, edit)
    except FlowNotFound:
        _LOGGER.info("flow gone; output not shown", extra=ids)
    except FlowTooLarge as exc:  # it grew meanwhile: the take stays on the asset records
        _LOGGER.warning("output not shown: %s", exc.message, extra=ids)
