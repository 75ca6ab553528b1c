"""Waiting for one ComfyUI prompt to end: its events first, /queue and /history when needed.

The `executed` message of the output node names its files; `execution_success` then ends
the wait at once. /history is read only when no such message arrived (a socket that
dropped, a follow resumed after the prompt ended), because ComfyUI can send
`execution_success` before its history holds the entry.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from flowboard.providers.base import ErrorCode, PermanentProviderError, TransientProviderError
from flowboard.providers.comfyui_client import ComfyUIClient, OutputFile, Placement, RetryPolicy
from flowboard.providers.comfyui_events import RECONNECTED, ComfyEvent, Subscription
from flowboard.providers.comfyui_progress import ThrottledReporter, WorkflowProgress
from flowboard.providers.comfyui_workflow import Workflow

_LOGGER = logging.getLogger(__name__)
_OUTPUT_KEYS = ("images", "gifs")  # SaveVideo & co. list videos under images; VHS uses gifs
_CALLS = RetryPolicy()
_HISTORY = RetryPolicy(attempts=8, initial=0.25, maximum=4.0)
_RECONNECT = RetryPolicy(initial=0.5, maximum=15.0)


@dataclass(frozen=True)
class ComfyTiming:
    """How the provider waits and retries; tests shorten these.

    retry: each HTTP call of start() and of reading the output (transient errors only).
    history: reading /history when no `executed` message named the output (fallback only).
    reconnect: the websocket's reconnect backoff.
    reconcile_seconds: a follower checks /queue and /history after this long without events.
    lost_checks / lost_check_delay: a prompt found neither queued nor in history is lost
        only after this many checks this far apart.
    report_interval: at most one progress report per this many seconds.
    """

    retry: RetryPolicy = _CALLS
    history: RetryPolicy = _HISTORY
    reconnect: RetryPolicy = _RECONNECT
    reconcile_seconds: float = 5.0
    lost_checks: int = 3
    lost_check_delay: float = 2.0
    report_interval: float = 0.25
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    heartbeat: float = 30.0
    chunk_size: int = 1 << 20

    def __post_init__(self) -> None:
        # Zero waits would turn the follow and reconnect loops into hot loops.
        waits = (self.reconcile_seconds, self.lost_check_delay, self.request_timeout)
        if min(waits) <= 0 or self.lost_checks < 1 or self.chunk_size < 1:
            raise ValueError(f"invalid comfyui timing: {self}")


class PromptLost(PermanentProviderError):
    """ComfyUI knows the prompt no more (it restarted): neither queued nor in history."""

    def __init__(self, prompt_id: str) -> None:
        super().__init__(
            ErrorCode.LOST_BY_PROVIDER,
            f"ComfyUI no longer knows prompt {prompt_id} (restarted?)",
        )


def failure(event: str, data: dict[str, Any]) -> PermanentProviderError:
    """Turn execution_error / execution_interrupted data into the job's error."""
    where = f"{data.get('node_type', '?')} (node {data.get('node_id', '?')})"
    if event == "execution_interrupted":
        return PermanentProviderError(ErrorCode.CANCELLED, f"interrupted at {where}")
    message = data.get("exception_message") or data.get("exception_type") or "failed"
    return PermanentProviderError(ErrorCode.PROVIDER_ERROR, f"{where}: {str(message).strip()}")


def history_failure(entry: dict[str, Any]) -> PermanentProviderError | None:
    """Return the error a finished history entry records, or None if it succeeded."""
    status = entry.get("status") or {}
    if status.get("status_str") != "error":
        return None
    for message in status.get("messages") or []:
        if (
            isinstance(message, list)
            and len(message) == 2
            and message[0] in ("execution_error", "execution_interrupted")
            and isinstance(message[1], dict)
        ):
            return failure(message[0], message[1])
    return PermanentProviderError(ErrorCode.PROVIDER_ERROR, "ComfyUI reports the prompt failed")


def output_files(output: Any) -> list[OutputFile]:
    """Return the files an output node's UI output lists."""
    if not isinstance(output, dict):
        return []
    found: list[OutputFile] = []
    for key in _OUTPUT_KEYS:
        for item in output.get(key) or []:
            if isinstance(item, dict) and item.get("filename"):
                found.append(
                    OutputFile(
                        str(item["filename"]),
                        str(item.get("subfolder") or ""),
                        str(item.get("type") or "output"),
                    )
                )
    return found


@dataclass
class Follower:
    """The wait for one prompt's end: its events, reconciles and progress.

    fresh: the subscription was opened before the prompt was submitted, so no event can
        have been missed (a reconnect since then is queued as RECONNECTED): the first
        look at /queue and /history is skipped.
    """

    client: ComfyUIClient
    timing: ComfyTiming
    prompt_id: str
    job_id: str
    workflow: Workflow
    sub: Subscription
    reporter: ThrottledReporter
    tracker: WorkflowProgress
    fresh: bool = False
    seen_files: list[OutputFile] = field(default_factory=list)
    misses: int = 0
    failing: bool = False

    @property
    def extra(self) -> dict[str, str]:
        return {"prompt_id": self.prompt_id, "job_id": self.job_id}

    async def run(self) -> list[OutputFile]:
        """Wait for the prompt to end; return its files or raise its error."""
        # Not fresh: the prompt may have ended while nobody listened (resume, late socket).
        files = None if self.fresh else await self._reconcile()
        while files is None:  # bounded by the caller's deadline
            event = await self._next_event()
            if event is None or event.type == RECONNECTED:
                files = await self._reconcile()
            else:
                files = await self._on_event(event)
        return files

    async def _next_event(self) -> ComfyEvent | None:
        wait = self.timing.lost_check_delay if self.misses else self.timing.reconcile_seconds
        try:
            async with asyncio.timeout(wait):
                return await self.sub.queue.get()
        except TimeoutError:
            return None

    async def _on_event(self, event: ComfyEvent) -> list[OutputFile] | None:
        self.misses = 0
        if event.type == "execution_success":
            # The output node's `executed` came before: its files, without reading history.
            return self.seen_files or await self._outputs()
        if event.type in ("execution_error", "execution_interrupted"):
            raise failure(event.type, event.data)
        if event.type == "executed" and str(event.data.get("node")) == self.workflow.output_node:
            self.seen_files = output_files(event.data.get("output"))
        await self.reporter.offer(self.tracker.apply(event.type, event.data))
        return None

    async def _reconcile(self) -> list[OutputFile] | None:
        """Ask ComfyUI where the prompt is; return its files if it succeeded."""
        try:
            # Queue first: ComfyUI moves a prompt from the queue to history atomically.
            placement = await self.client.queue_placement(self.prompt_id)
            queued = placement is not Placement.UNKNOWN
            entry = None if queued else await self.client.history(self.prompt_id)
        except TransientProviderError as exc:
            if not self.failing:  # log once when ComfyUI starts failing, once when it recovers
                _LOGGER.warning("comfyui unreachable, still waiting: %s", exc, extra=self.extra)
            self.failing = True
            return None
        if self.failing:
            _LOGGER.info("comfyui reachable again", extra=self.extra)
            self.failing = False
        if queued:
            self.misses = 0
            return None
        if entry is not None:
            return await self._finished(entry)
        self._missing()
        return None

    def _missing(self) -> None:
        """Count a check that found the prompt nowhere; raise PromptLost after enough."""
        self.misses += 1
        if self.misses >= self.timing.lost_checks:
            raise PromptLost(self.prompt_id)

    async def _finished(self, entry: dict[str, Any]) -> list[OutputFile]:
        found = history_failure(entry)
        if found is not None:
            raise found
        files = output_files((entry.get("outputs") or {}).get(self.workflow.output_node))
        return files or self.seen_files or await self._outputs()

    async def _outputs(self) -> list[OutputFile]:
        """Read the output node's files from /history, retrying while the entry lags."""

        async def read() -> list[OutputFile]:
            entry = await self.client.history(self.prompt_id)
            if entry is not None and (found := history_failure(entry)) is not None:
                raise found
            outputs = (entry or {}).get("outputs") or {}
            files = output_files(outputs.get(self.workflow.output_node))
            if not files:
                raise TransientProviderError("ComfyUI history has no outputs yet")
            return files

        try:
            return await self.timing.history.call(read, self.extra)
        except TransientProviderError:
            raise PermanentProviderError(
                ErrorCode.EMPTY_RESULT,
                f"ComfyUI finished but node {self.workflow.output_node} output no video",
            ) from None
