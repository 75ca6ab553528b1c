"""Conversion between API models (`id`) and MongoDB documents (`_id`)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from flowboard.db.database import Document
from flowboard.safe_url import STORED

M = TypeVar("M", bound=BaseModel)


def to_doc(model: BaseModel) -> Document:
    doc = model.model_dump(mode="python", by_alias=True)
    doc["_id"] = doc.pop("id")
    return doc


def from_doc(model: type[M], doc: Document) -> M:
    data = dict(doc)
    data["id"] = data.pop("_id")
    return model.model_validate(data, context={STORED: True})  # written by us, maybe long ago
