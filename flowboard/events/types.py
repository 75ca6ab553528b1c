"""Typed event payloads; each class names its event once, in EVENT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    """Base of every bus payload."""

    EVENT: ClassVar[str] = ""


@dataclass(frozen=True)
class AssetUpdated(Event):
    """A generated asset's job ended (completed, failed, cancelled) or was resumed.

    Progress is the task's (execution.updated carries it); this event announces an end.
    status: the asset's AssetStatus value after the change.
    progress: 100 when COMPLETED, else 0-100 as last known on the asset.
    error_code / error_message: set when status is FAILED.
    """

    EVENT: ClassVar[str] = "asset.updated"

    asset_id: str
    org_id: str
    flow_id: str
    execution_id: str
    node_id: str
    status: str
    progress: float
    estimated: bool = False
    url: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class ExecutionUpdated(Event):
    """An execution's state was persisted; `execution` is its JSON form."""

    EVENT: ClassVar[str] = "execution.updated"

    execution_id: str
    flow_id: str
    org_id: str
    status: str
    execution: dict[str, Any]


@dataclass(frozen=True)
class HandlerFailed(Event):
    """A handler gave up on an event after its bounded retries."""

    EVENT: ClassVar[str] = "handler.failed"

    handler: str
    event: Event
    error: str
    attempts: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.EVENT: cls for cls in (AssetUpdated, ExecutionUpdated, HandlerFailed)
}
