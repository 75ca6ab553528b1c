"""ComfyUI as a video provider: fill a configured workflow, queue it, follow it, stream the file.

A prompt's id is derived from the job id, so a retried or resumed `start()` finds the
prompt ComfyUI already has instead of queueing a second one. Events arrive over one
shared websocket (see EventHub); because sockets drop and ComfyUI forgets its queue on
restart, every follower also reconciles with /queue and /history on each reconnect and
every few seconds, and a prompt ComfyUI no longer knows fails as lost_by_provider.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from flowboard.config import ComfyUISettings
from flowboard.providers.base import (
    ErrorCode,
    InvalidVideoRequest,
    PermanentProviderError,
    ProgressCallback,
    ProviderError,
    TransientProviderError,
    VideoOutput,
    VideoRequest,
)
from flowboard.providers.comfyui_client import ComfyUIClient, OutputFile, Placement, RetryPolicy
from flowboard.providers.comfyui_events import RECONNECTED, ComfyEvent, EventHub, Subscription
from flowboard.providers.comfyui_progress import ThrottledReporter, WorkflowProgress
from flowboard.providers.comfyui_workflow import (
    Workflow,
    check_request,
    fill,
    inputs_for,
    load_workflows,
)

_LOGGER = logging.getLogger(__name__)
_PROMPT_NAMESPACE = uuid.UUID("0b6f7c52-3f0e-4d7a-9a43-2a9d5c1e8f61")
_OUTPUT_KEYS = ("images", "gifs")  # SaveVideo & co. list videos under images; VHS uses gifs
_IMAGE_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
_CALLS = RetryPolicy()
_HISTORY = RetryPolicy(attempts=8, initial=0.25, maximum=4.0)
_RECONNECT = RetryPolicy(initial=0.5, maximum=15.0)


@dataclass(frozen=True)
class ComfyTiming:
    """How the provider waits and retries; tests shorten these.

    retry: each HTTP call of start() and of reading the output (transient errors only).
    history: reading /history after execution_success, which can come before the entry.
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


def prompt_id_for(job_id: str) -> str:
    """Return the prompt id of a job: the same job always maps to the same prompt."""
    return str(uuid.uuid5(_PROMPT_NAMESPACE, job_id))


def default_client_id(work_dir: Path) -> str:
    """Return a clientId stable across restarts of this installation (host + data dir)."""
    # Stable, so a follow() resumed after a restart receives its prompt's live events again;
    # per installation, so two Flowboards sharing one ComfyUI never take each other's events.
    seed = f"{socket.gethostname()}:{work_dir.expanduser().resolve()}"
    return "flowboard-" + uuid.uuid5(_PROMPT_NAMESPACE, seed).hex[:16]


@dataclass
class StreamedOutput:
    """The video as ComfyUI's /view serves it, read in chunks and released at the end.

    The response is open from follow() on; an output never read is closed with the session.
    """

    response: aiohttp.ClientResponse
    content_type: str
    chunk_size: int

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_chunked(self.chunk_size):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientProviderError(f"reading the ComfyUI output failed: {exc}") from exc
        finally:
            self.response.release()


def _failure(event: str, data: dict[str, Any]) -> PermanentProviderError:
    """Turn execution_error / execution_interrupted data into the job's error."""
    where = f"{data.get('node_type', '?')} (node {data.get('node_id', '?')})"
    if event == "execution_interrupted":
        return PermanentProviderError(ErrorCode.CANCELLED, f"interrupted at {where}")
    message = data.get("exception_message") or data.get("exception_type") or "failed"
    return PermanentProviderError(ErrorCode.PROVIDER_ERROR, f"{where}: {str(message).strip()}")


def _history_failure(entry: dict[str, Any]) -> PermanentProviderError | None:
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
            return _failure(message[0], message[1])
    return PermanentProviderError(ErrorCode.PROVIDER_ERROR, "ComfyUI reports the prompt failed")


def _files(output: Any) -> list[OutputFile]:
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
class _Follower:
    """The wait for one prompt's end: its events, reconciles and progress."""

    provider: ComfyUIProvider
    prompt_id: str
    job_id: str
    workflow: Workflow
    sub: Subscription
    reporter: ThrottledReporter
    tracker: WorkflowProgress
    seen_files: list[OutputFile] = field(default_factory=list)
    misses: int = 0
    failing: bool = False

    @property
    def extra(self) -> dict[str, str]:
        return {"prompt_id": self.prompt_id, "job_id": self.job_id}

    async def run(self) -> list[OutputFile]:
        """Wait for the prompt to end; return its files or raise its error."""
        # First look: the prompt may have ended while nobody listened (resume, late socket).
        files = await self._reconcile()
        while files is None:  # bounded by the caller's deadline
            event = await self._next_event()
            if event is None or event.type == RECONNECTED:
                files = await self._reconcile()
            else:
                files = await self._on_event(event)
        return files

    async def _next_event(self) -> ComfyEvent | None:
        timing = self.provider.timing
        wait = timing.lost_check_delay if self.misses else timing.reconcile_seconds
        try:
            async with asyncio.timeout(wait):
                return await self.sub.queue.get()
        except TimeoutError:
            return None

    async def _on_event(self, event: ComfyEvent) -> list[OutputFile] | None:
        self.misses = 0
        if event.type == "execution_success":
            return await self._outputs()
        if event.type in ("execution_error", "execution_interrupted"):
            raise _failure(event.type, event.data)
        if event.type == "executed" and str(event.data.get("node")) == self.workflow.output_node:
            self.seen_files = _files(event.data.get("output"))
        await self.reporter.offer(self.tracker.apply(event.type, event.data))
        return None

    async def _reconcile(self) -> list[OutputFile] | None:
        """Ask ComfyUI where the prompt is; return its files if it succeeded."""
        client = self.provider.client
        try:
            # Queue first: ComfyUI moves a prompt from the queue to history atomically.
            placement = await client.queue_placement(self.prompt_id)
            queued = placement is not Placement.UNKNOWN
            entry = None if queued else await client.history(self.prompt_id)
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
        """Count a check that found the prompt nowhere; fail it as lost after enough."""
        self.misses += 1
        if self.misses < self.provider.timing.lost_checks:
            return
        raise PermanentProviderError(
            ErrorCode.LOST_BY_PROVIDER,
            f"ComfyUI no longer knows prompt {self.prompt_id} (restarted?)",
        )

    async def _finished(self, entry: dict[str, Any]) -> list[OutputFile]:
        failure = _history_failure(entry)
        if failure is not None:
            raise failure
        files = _files((entry.get("outputs") or {}).get(self.workflow.output_node))
        return files or await self._outputs()

    async def _outputs(self) -> list[OutputFile]:
        """Read the output node's files from /history, retrying while the entry lags."""

        async def read() -> list[OutputFile]:
            entry = await self.provider.client.history(self.prompt_id)
            if entry is not None and (failure := _history_failure(entry)) is not None:
                raise failure
            outputs = (entry or {}).get("outputs") or {}
            files = _files(outputs.get(self.workflow.output_node))
            if not files:
                raise TransientProviderError("ComfyUI history has no outputs yet")
            return files

        try:
            return await self.provider.timing.history.call(read, self.extra)
        except TransientProviderError:
            if self.seen_files:  # the executed event named the files: use them
                return self.seen_files
            raise PermanentProviderError(
                ErrorCode.EMPTY_RESULT,
                f"ComfyUI finished but node {self.workflow.output_node} output no video",
            ) from None


class ComfyUIProvider:
    """Runs configured ComfyUI workflows as video jobs.

    work_dir only names the installation for the default clientId: output is streamed.
    """

    name = "comfyui"

    def __init__(
        self,
        settings: ComfyUISettings,
        work_dir: Path,
        *,
        timing: ComfyTiming | None = None,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.timing = timing or ComfyTiming()
        self.workflows = load_workflows(settings)
        self.client = ComfyUIClient(
            settings.url,
            request_timeout=self.timing.request_timeout,
            heartbeat=self.timing.heartbeat,
        )
        self.client_id = client_id or default_client_id(work_dir)
        self._hub = EventHub(
            self.client, self.client_id, self.timing.reconnect, self.timing.connect_timeout
        )

    @property
    def deadline_seconds(self) -> float:
        return self.settings.deadline_seconds

    def _workflow(self, request: VideoRequest) -> Workflow:
        name = request.workflow or self.settings.workflow
        found = self.workflows.get(name)
        if found is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise InvalidVideoRequest(
                f"workflow {name!r} is not configured for comfyui (configured: {known})"
            )
        return found

    def validate(self, request: VideoRequest) -> None:
        check_request(self._workflow(request), request)

    async def start(self, request: VideoRequest) -> str:
        workflow = self._workflow(request)
        check_request(workflow, request)
        prompt_id = prompt_id_for(request.job_id)
        extra = {"prompt_id": prompt_id, "job_id": request.job_id}
        if await self.timing.retry.call(lambda: self._known(prompt_id), extra):
            _LOGGER.info("comfyui already has the prompt; not queueing again", extra=extra)
            return prompt_id
        image = await self._upload(request, extra) if request.first_frame is not None else None
        graph = fill(workflow, inputs_for(workflow, request, image))
        # Connect first: ComfyUI does not replay the events of a prompt to a late socket.
        await self._hub.wait_connected(self.timing.connect_timeout)
        await self.timing.retry.call(lambda: self._submit(graph, prompt_id), extra)
        _LOGGER.info("comfyui prompt queued (workflow %s)", workflow.name, extra=extra)
        return prompt_id

    async def _known(self, prompt_id: str) -> bool:
        """Say whether ComfyUI holds the prompt (queued, running or finished)."""
        if await self.client.queue_placement(prompt_id) is not Placement.UNKNOWN:
            return True
        return await self.client.history(prompt_id) is not None

    async def _submit(self, graph: dict[str, Any], prompt_id: str) -> None:
        # Checked on every attempt: a failed answer may still have queued the prompt.
        if not await self._known(prompt_id):
            await self.client.submit(graph, self.client_id, prompt_id)

    async def _upload(self, request: VideoRequest, extra: dict[str, str]) -> str:
        frame = request.first_frame
        assert frame is not None
        # Named after the job: a retry uploads the same name and bytes, which ComfyUI dedupes.
        name = f"{request.job_id}{_IMAGE_SUFFIXES.get(frame.content_type, '.png')}"
        return await self.timing.retry.call(
            lambda: self.client.upload_image(name, frame.data, frame.content_type), extra
        )

    async def follow(
        self, operation_id: str, request: VideoRequest, report: ProgressCallback
    ) -> VideoOutput:
        workflow = self._workflow(request)
        follower = _Follower(
            provider=self,
            prompt_id=operation_id,
            job_id=request.job_id,
            workflow=workflow,
            sub=self._hub.subscribe(operation_id),
            reporter=ThrottledReporter(report, self.timing.report_interval),
            tracker=WorkflowProgress.for_graph(workflow.graph, workflow.output_node),
        )
        try:
            files = await follower.run()
        finally:
            follower.sub.close()
        await follower.reporter.flush()
        _LOGGER.info("comfyui prompt finished", extra=follower.extra)
        return await self._open(files[0], follower.extra)

    async def _open(self, file: OutputFile, extra: dict[str, str]) -> StreamedOutput:
        response = await self.timing.retry.call(lambda: self.client.open_view(file), extra)
        kind = response.content_type
        if not kind or kind == "application/octet-stream":
            kind = "video/mp4"
        return StreamedOutput(response, kind, self.timing.chunk_size)

    async def cancel(self, operation_id: str) -> None:
        extra = {"prompt_id": operation_id}
        # Delete first, then interrupt: a prompt that starts in between is still stopped.
        for action in (self.client.delete_pending, self.client.interrupt):
            try:
                await action(operation_id)
            except ProviderError as exc:
                _LOGGER.info("comfyui cancel step failed: %s", exc.message, extra=extra)
            except Exception:
                _LOGGER.exception("comfyui cancel step crashed", extra=extra)

    async def close(self) -> None:
        await self._hub.close()
        await self.client.close()
