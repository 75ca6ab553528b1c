"""The flow file format `flowboard.flow/v1`: what export writes, import and `flowboard run` read.

A document is a flow without its server-side bookkeeping (organisation, revision,
timestamps). Nodes are checked by the same models as the canvas API; a node may name a
local `file` that `flowboard run` uploads first (the server itself refuses it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model, field_validator

from flowboard.canvas.metadata import Metadata
from flowboard.canvas.model import Edge, Flow, Node, Position
from flowboard.ids import Id
from flowboard.nodes.registry import NODE_TYPES
from flowboard.schema import ApiModel

FORMAT = "flowboard.flow/v1"
FORMAT_FAMILY = "flowboard.flow/"


class DocumentNode(Node):
    """A node of a flow file."""

    file: str | None = Field(
        default=None,
        max_length=1024,
        description=(
            "A local image, relative to the flow file, that `flowboard run` uploads and "
            "sets as this asset node's assetId. The import endpoint refuses it."
        ),
    )

    def to_node(self) -> Node:
        return Node(id=self.id, type=self.type, position=self.position, data=self.data)


def _check_format(value: str) -> str:
    if value == FORMAT:
        return value
    if value.startswith(FORMAT_FAMILY):
        raise ValueError(f"unsupported format version {value!r}: this server reads {FORMAT!r}")
    raise ValueError(f"not a Flowboard flow document (expected {FORMAT!r}, got {value!r})")


class FlowDocument(ApiModel):
    """A whole flow in the versioned file format."""

    format: str = Field(description=f"always {FORMAT!r} for this version")
    id: Id | None = Field(
        default=None,
        description="the flow to update on import (one of the caller's own), or to create",
    )
    name: str = Field(min_length=1, max_length=200)
    metadata: Metadata = Field(default_factory=dict)
    nodes: list[DocumentNode] = Field(default_factory=list, max_length=2_000)
    edges: list[Edge] = Field(default_factory=list, max_length=10_000)

    _format = field_validator("format")(_check_format)

    def canvas_nodes(self) -> list[Node]:
        return [node.to_node() for node in self.nodes]


def export_document(flow: Flow) -> FlowDocument:
    """A flow as a document: no organisation, revision, timestamps nor capability URLs."""
    nodes = []
    for node in flow.nodes:
        # Capability URLs grant access to stored media: the asset id stays, and
        # GET /assets/{assetId} hands out a fresh URL to those allowed to see it.
        node_type = NODE_TYPES.get(node.type)
        hidden = node_type.capability_fields if node_type is not None else ()
        data = {k: v for k, v in node.data.items() if k not in hidden}
        nodes.append(DocumentNode(id=node.id, type=node.type, position=node.position, data=data))
    return FlowDocument(
        format=FORMAT,
        id=flow.id,
        name=flow.name,
        metadata=flow.metadata,
        nodes=nodes,
        edges=flow.edges,
    )


def json_schema() -> dict[str, Any]:
    """The document's JSON Schema, each node type with the model of its `data`."""
    variants: list[Any] = []
    for name, node_type in sorted(NODE_TYPES.items()):
        literal: Any = Literal[name]
        variants.append(
            create_model(
                f"{node_type.data_model.__name__.removesuffix('Data')}",
                __base__=ApiModel,
                __doc__=f"A node of type `{name}`.",
                id=(Id, ...),
                type=(literal, ...),
                position=(Position, Position()),
                data=(node_type.data_model, Field(default_factory=node_type.data_model)),
                file=(str | None, DocumentNode.model_fields["file"]),
            )
        )
    union: Any = variants[0]
    for variant in variants[1:]:
        union = union | variant
    document = create_model(
        "FlowDocument",
        __base__=FlowDocument,
        __doc__=FlowDocument.__doc__,
        nodes=(list[union], Field(default_factory=list, max_length=2_000)),
    )
    schema = document.model_json_schema(by_alias=True)
    schema["properties"]["format"]["const"] = FORMAT
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
    }
