"""What every node type declares: its name and the model its `data` must satisfy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowboard.schema import ApiModel

if TYPE_CHECKING:
    from flowboard.nodes.kind import GenerationSpec


@dataclass(frozen=True)
class NodeType:
    """A kind of canvas node.

    name: the value of `node.type`.
    data_model: validates and normalises `node.data` (and documents it in OpenAPI).
    runnable: whether a processor executes it when a flow runs.
    generation: for a node that generates media, what the generic generation
        processor needs to know about it (which makes it runnable).
    capability_fields: the `data` keys (as stored) that carry capability URLs to
        stored media: an export leaves them out.
    text_field: the `data` key whose text this node provides to the nodes it feeds
        (a prompt's `text`): their processors read it and their content keys hash it.
    """

    name: str
    data_model: type[ApiModel]
    runnable: bool = False
    generation: GenerationSpec | None = None
    capability_fields: tuple[str, ...] = ()
    text_field: str | None = None

    def __post_init__(self) -> None:
        if self.generation is not None and not self.runnable:
            object.__setattr__(self, "runnable", True)

    def text_of(self, data: dict[str, Any]) -> str | None:
        """The text this node provides (None when it provides none, or an empty one)."""
        value = data.get(self.text_field) if self.text_field else None
        return str(value) if value else None

    def validate_data(self, data: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Return the normalised data, or raise pydantic's ValidationError.

        context: pydantic's validation context (a stored record's skips the URL rule).
        """
        return self.data_model.model_validate(data, context=context).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
