"""What the fake ComfyUI holds (queue items, history) and records for test assertions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


def now_ms() -> int:
    """Return the wall clock in milliseconds, as ComfyUI's event timestamps."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class QueueItem:
    """One accepted prompt.

    number: the queue number POST /prompt returned; lower numbers run first.
    prompt_id: the id POST /prompt returned (the client's own when it sent one).
    prompt: the API-format workflow as submitted.
    extra_data: `{"client_id": ...}` merged over any submitted `extra_data`.
    outputs: ids of the output nodes that passed validation.
    """

    number: int
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]

    @property
    def client_id(self) -> str | None:
        """Return the socket id that receives this prompt's events."""
        value = self.extra_data.get("client_id")
        return str(value) if value is not None else None

    def as_json(self) -> list[Any]:
        """Return the item as /queue and /history list it."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class HistoryLag(StrEnum):
    """How /history/{id} hides a just-finished prompt during a history race."""

    MISSING = "missing"  # answer {}
    NO_OUTPUTS = "no_outputs"  # answer the entry with outputs {}


@dataclass
class HistoryEntry:
    """A finished prompt as /history reports it.

    status_str: "success" or "error" (runtime failure or interrupt).
    messages: `[event, data]` pairs: execution_start, execution_cached and the final event.
    outputs: UI output per output node; {} unless the prompt succeeded.
    hidden_reads: /history reads still to answer per `lag` (the history race knob).
    """

    item: QueueItem
    status_str: str
    messages: list[list[Any]]
    outputs: dict[str, Any]
    hidden_reads: int = 0
    lag: HistoryLag = HistoryLag.MISSING

    def as_json(self, *, with_outputs: bool = True) -> dict[str, Any]:
        """Return the entry's JSON value (the part under its prompt id)."""
        outputs = self.outputs if with_outputs else {}
        return {
            "prompt": self.item.as_json(),
            "outputs": outputs,
            "status": {
                "status_str": self.status_str,
                "completed": self.status_str == "success",
                "messages": self.messages,
            },
            "meta": {
                node_id: {
                    "node_id": node_id,
                    "display_node": node_id,
                    "parent_node": None,
                    "real_node_id": node_id,
                }
                for node_id in outputs
            },
        }

    def read(self) -> dict[str, Any] | None:
        """Answer one /history read, spending a hidden read if any are left."""
        if self.hidden_reads <= 0:
            return self.as_json()
        self.hidden_reads -= 1
        return None if self.lag is HistoryLag.MISSING else self.as_json(with_outputs=False)


@dataclass(frozen=True)
class SubmittedPrompt:
    """A prompt POST /prompt accepted: its id, number, client and the request body."""

    prompt_id: str
    number: int
    client_id: str | None
    prompt: dict[str, Any]
    body: dict[str, Any]


@dataclass(frozen=True)
class RejectedPrompt:
    """A POST /prompt that failed validation: the body and the 400 answer."""

    body: Any
    response: dict[str, Any]


@dataclass(frozen=True)
class Upload:
    """One POST /upload/image: what was sent and the name the server answered."""

    filename: str
    name: str
    subfolder: str
    type: str
    size: int
    duplicate: bool


@dataclass(frozen=True)
class Interrupt:
    """One POST /interrupt: the prompt it named (None = global) and what it stopped."""

    requested_prompt_id: str | None
    running_prompt_id: str | None
    applied: bool


@dataclass(frozen=True)
class QueueDelete:
    """One POST /queue: ids asked for, whether it was a clear, and what was removed."""

    delete: list[str]
    clear: bool
    removed: list[str]


@dataclass(frozen=True)
class FailedRequest:
    """An HTTP request the fake failed on purpose."""

    method: str
    path: str
    status: int


@dataclass(frozen=True)
class SentMessage:
    """One websocket message the fake sent (sid = the socket's clientId)."""

    sid: str
    type: str
    data: dict[str, Any]


@dataclass
class WsConnection:
    """One websocket connection.

    client_id: the sid the socket got (its clientId, or a generated one).
    requested_client_id: the clientId query value, None when absent.
    close_reason: None while open; "client", "dropped", "restart" or "stopped".
    """

    client_id: str
    requested_client_id: str | None
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    close_reason: str | None = None
    messages_sent: int = 0
