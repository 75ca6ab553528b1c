"""`generated_asset`: the output of a generation node, added by the service."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flowboard.ids import Id
from flowboard.nodes.base import NodeType
from flowboard.safe_url import PageUrl, PageUrls
from flowboard.schema import ApiModel


class GeneratedAssetNodeData(ApiModel):
    asset_id: Id | None = None
    url: PageUrl | None = Field(default=None, max_length=4096)
    poster_url: PageUrl | None = Field(default=None, max_length=4096)
    # every file of a take with several (count > 1 images); `url` is the first
    urls: PageUrls | None = Field(default=None, max_length=8)
    media_type: Literal["image", "video"] = "video"
    source_node_id: Id | None = None
    execution_id: Id | None = None


NODE_TYPE = NodeType(
    "generated_asset", GeneratedAssetNodeData, capability_fields=("url", "posterUrl", "urls")
)
