"""The units a generation is billed by: from a node's data, and from a finished take."""

from __future__ import annotations

from typing import Any

from flowboard.assets.model import AssetType, GeneratedAsset
from flowboard.models.costs import Units
from flowboard.providers.base import MediaKind


def estimate_units(media: MediaKind, params: dict[str, Any]) -> Units:
    """A generation's units from its node data: seconds per video, images per image."""
    outputs = int(params.get("variants", 1))
    if media is MediaKind.VIDEO:
        return Units(seconds=float(params.get("durationSeconds", 0)) * outputs, runs=1)
    return Units(images=int(params.get("count", 1)) * outputs, runs=1)


def delivered_units(asset: GeneratedAsset) -> Units:
    """What a finished take delivered: its videos x requested seconds, or its images."""
    outputs = max(1, len(asset.outputs))
    if asset.type is AssetType.VIDEO:
        return Units(seconds=float(asset.parameters.get("durationSeconds", 0)) * outputs, runs=1)
    return Units(images=outputs, runs=1)
