"""What every node type declares: its name and the model its `data` must satisfy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowboard.schema import ApiModel


@dataclass(frozen=True)
class NodeType:
    """A kind of canvas node.

    name: the value of `node.type`.
    data_model: validates and normalises `node.data`.
    runnable: whether a processor executes it when a flow runs.
    """

    name: str
    data_model: type[ApiModel]
    runnable: bool = False

    def validate_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """Return the normalised data, or raise pydantic's ValidationError."""
        return self.data_model.model_validate(data).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
