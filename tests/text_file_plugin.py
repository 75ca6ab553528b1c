"""A throw-away input node type, declared outside `flowboard/` (see test_plugins).

`text_file` holds a text file's content (its name is kept for the canvas); the nodes it
feeds read that text as their prompt, as they read a `prompt` node's, because the type
declares `text_field`: no edit to Flowboard.
"""

from __future__ import annotations

from pydantic import Field

from flowboard.nodes.base import NodeType
from flowboard.schema import ApiModel


class TextFileNodeData(ApiModel):
    name: str = Field(default="", max_length=200)
    content: str = Field(default="", max_length=10_000)


NODE_TYPE = NodeType("text_file", TextFileNodeData, text_field="content")
