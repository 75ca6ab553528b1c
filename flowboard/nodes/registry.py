"""The node types the canvas accepts; a new type is one module plus one line here."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from flowboard.nodes import asset, generated_asset, prompt, video_gen
from flowboard.nodes.base import NodeType

NODE_TYPES: Mapping[str, NodeType] = MappingProxyType(
    {
        module.NODE_TYPE.name: module.NODE_TYPE
        for module in (asset, prompt, video_gen, generated_asset)
    }
)
