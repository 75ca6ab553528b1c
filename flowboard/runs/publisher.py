"""Show an execution's state: on its flow's stream, on the bus, and in the mirror."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowboard.events.bus import EventBus
from flowboard.events.types import ExecutionUpdated
from flowboard.models.execution import Execution
from flowboard.streams.hub import StreamEventType, StreamHub

if TYPE_CHECKING:
    from flowboard.mirror.firestore import FirestoreMirror


@dataclass(frozen=True)
class ExecutionPublisher:
    """Where a changed execution is shown (the mirror only when configured)."""

    hub: StreamHub
    bus: EventBus
    mirror: FirestoreMirror | None = None

    def publish(self, execution: Execution, announce: bool = True) -> None:
        """Show the execution on its flow's stream (and mirror); `announce`: on the bus too.

        Its JSON is built only for a watched flow, the mirror or the bus: thousands of
        unwatched jobs' estimated progress then costs next to nothing.
        """
        payload: dict[str, Any] | None = None

        def built() -> dict[str, Any]:
            nonlocal payload
            if payload is None:
                payload = execution.to_json()
            return payload

        self.hub.publish(execution.flow_id, StreamEventType.EXECUTION_UPDATE, built)
        if announce:
            self.bus.publish(
                ExecutionUpdated(
                    execution.id,
                    execution.flow_id,
                    execution.org_id,
                    execution.status.value,
                    built(),
                )
            )
        if self.mirror is not None:
            self.mirror.submit(execution.id, built())
