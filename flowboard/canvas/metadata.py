"""A flow's free-form metadata and the rule for storing it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

INT64 = range(-(2**63), 2**63)


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse free-form JSON the database cannot store: NUL in a key, an int past 64 bits."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if any("\x00" in key for key in item):
                raise ValueError("keys must not contain NUL characters")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and item not in INT64:
            raise ValueError("integers must fit in 64 bits")
    return value


# Flow metadata is stored as given: checked once here, on the way in.
Metadata = Annotated[dict[str, Any], AfterValidator(_storable)]
