"""`prompt`: a block of text that becomes the prompt of the nodes it feeds."""

from __future__ import annotations

from pydantic import Field

from flowboard.nodes.base import NodeType
from flowboard.schema import ApiModel


class PromptNodeData(ApiModel):
    text: str = Field(default="", max_length=10_000)


NODE_TYPE = NodeType("prompt", PromptNodeData, text_field="text")
