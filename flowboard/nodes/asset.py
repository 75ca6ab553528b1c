"""`asset`: an uploaded or linked image (or video) that feeds other nodes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flowboard.ids import Id
from flowboard.nodes.base import NodeType
from flowboard.safe_url import PageUrl
from flowboard.schema import ApiModel


class AssetNodeData(ApiModel):
    asset_id: Id | None = None
    url: PageUrl | None = Field(default=None, max_length=2048)
    media_type: Literal["image", "video"] = "image"
    label: str | None = Field(default=None, max_length=200)


NODE_TYPE = NodeType("asset", AssetNodeData)
