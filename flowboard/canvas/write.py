"""How an edit reaches the database: the document it writes, and the size the limits count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument

from flowboard.canvas.model import Flow
from flowboard.db.documents import to_doc


@dataclass(frozen=True)
class FlowWrite:
    """One edit's write: `fields` to `$set`, or (None) the whole `document`; `size` after it."""

    size: int
    fields: dict[str, Any] | None = None
    document: RawBSONDocument | None = None


def encode(flow: Flow) -> RawBSONDocument:
    """The flow's stored document, encoded once: its size is what the limit counts."""
    return RawBSONDocument(bson.encode(to_doc(flow)))


def plan(before: Flow, before_size: int | None, after: Flow) -> FlowWrite:
    """The write that turns the stored `before` into `after`: the whole document.

    (A `$set` of only the changed array elements costs the embedded database more than
    replacing the document: it reads, patches and rewrites all of it.)
    """
    return whole(after)


def whole(flow: Flow) -> FlowWrite:
    document = encode(flow)
    return FlowWrite(size=len(document.raw), document=document)
