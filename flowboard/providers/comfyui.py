"""ComfyUI as a video provider: fill a configured workflow, queue it, follow it, stream the file.

A prompt's id is derived from the job id, so a resumed `start()` finds the prompt ComfyUI
already has instead of queueing a second one. Events arrive over one shared websocket
(see EventHub), subscribed before the prompt is submitted so that none is missed; the
common path is one upload (only for an image not yet on the server), POST /prompt and
GET /view. Because sockets drop and ComfyUI forgets its queue on restart, a follower
reconciles with /queue and /history after a reconnect or a silence. A prompt ComfyUI lost
is submitted once more (the processor records the attempt); lost again, the job fails
as lost_by_provider.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import NoReturn

import aiohttp

from flowboard.config import ComfyUISettings
from flowboard.providers.base import (
    ErrorCode,
    InputImage,
    InvalidVideoRequest,
    PermanentProviderError,
    Progress,
    ProgressCallback,
    ProviderError,
    TransientProviderError,
    Variants,
    VideoOutput,
    VideoRequest,
)
from flowboard.providers.comfyui_client import ComfyUIClient, OutputFile, Placement
from flowboard.providers.comfyui_events import EventHub, Subscription
from flowboard.providers.comfyui_follow import ComfyTiming, Follower, PromptLost
from flowboard.providers.comfyui_progress import ThrottledReporter, WorkflowProgress
from flowboard.providers.comfyui_uploads import Uploads
from flowboard.providers.comfyui_workflow import (
    Inputs,
    Workflow,
    check_request,
    derived_seed,
    fill,
    inputs_for,
    load_workflows,
)

# Variants are one prompt each: the operation id lists their prompt ids.
VARIANT_SEPARATOR = ","

__all__ = ["ComfyTiming", "ComfyUIProvider", "PromptJob", "default_client_id", "prompt_id_for"]

_LOGGER = logging.getLogger(__name__)
_PROMPT_NAMESPACE = uuid.UUID("0b6f7c52-3f0e-4d7a-9a43-2a9d5c1e8f61")
MAX_EARLY = 10_000  # subscriptions of submitted prompts nobody followed yet


def prompt_id_for(job_id: str) -> str:
    """Return the prompt id of a job: the same job always maps to the same prompt."""
    return str(uuid.uuid5(_PROMPT_NAMESPACE, job_id))


def default_client_id(work_dir: Path) -> str:
    """Return a clientId stable across restarts of this installation (host + data dir)."""
    # Stable, so a follow() resumed after a restart receives its prompt's live events again;
    # per installation, so two Flowboards sharing one ComfyUI never take each other's events.
    seed = f"{socket.gethostname()}:{work_dir.expanduser().resolve()}"
    return "flowboard-" + uuid.uuid5(_PROMPT_NAMESPACE, seed).hex[:16]


@dataclass(frozen=True)
class PromptJob:
    """One prompt to run, whatever the media kind (video here, images in comfyui_image).

    job_id, resumed: the request's.
    workflow: the checked workflow.
    upload: the input image to upload first, if any.
    inputs: the workflow inputs, given the uploaded image's name (None without one).
    """

    job_id: str
    resumed: bool
    workflow: Workflow
    upload: InputImage | None
    inputs: Callable[[str | None], Inputs]


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


class ComfyUIProvider:
    """Runs configured ComfyUI workflows as video jobs.

    work_dir only names the installation for the default clientId: output is streamed.
    """

    name = "comfyui"
    owns_call_retries = True  # each HTTP call retries itself (ComfyTiming.retry)

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
        kind = "input" if settings.keep_inputs else "temp"
        self.uploads = Uploads(self.client, self.timing.retry, kind)
        self._hub = EventHub(
            self.client,
            self.client_id,
            self.timing.reconnect,
            self.timing.connect_timeout,
            on_connect=self.uploads.forget,
        )
        # Submitted prompts whose follow() has not begun: their events wait here.
        self._early: dict[str, Subscription] = {}
        # Prompts whose submission may or may not have reached ComfyUI (a failed start).
        self._uncertain: set[str] = set()
        # Prompts ComfyUI lost once and that were submitted again.
        self._resubmitted: set[str] = set()

    @property
    def deadline_seconds(self) -> float:
        return self.settings.deadline_seconds

    def workflow_named(self, name: str) -> Workflow:
        """Return the configured workflow `name`; InvalidVideoRequest (422) when unknown."""
        found = self.workflows.get(name)
        if found is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise InvalidVideoRequest(
                f"workflow {name!r} is not configured for comfyui (configured: {known})"
            )
        return found

    def _job(self, request: VideoRequest, *, check: bool = True) -> PromptJob:
        workflow = self.workflow_named(request.workflow or self.settings.workflow)
        if check:
            check_request(workflow, request)
        inputs = partial(inputs_for, workflow, request)
        return PromptJob(request.job_id, request.resumed, workflow, request.first_frame, inputs)

    def _jobs(self, request: VideoRequest, *, check: bool = True) -> list[PromptJob]:
        """One prompt a variant: job ids `<job>-v<i>`, seeds seed..seed+N-1."""
        if request.variants == 1:
            return [self._job(request, check=check)]
        base = request.seed if request.seed is not None else derived_seed(request.job_id)
        return [
            self._job(
                replace(request, job_id=f"{request.job_id}-v{i}", seed=base + i, variants=1),
                check=check,
            )
            for i in range(request.variants)
        ]

    def validate(self, request: VideoRequest) -> None:
        self._jobs(request)

    async def reachable(self) -> bool:
        """Say whether ComfyUI answers /system_stats now (for readiness reports)."""
        try:
            await self.client.system_stats()
        except ProviderError:
            return False
        return True

    async def start(self, request: VideoRequest) -> str:
        """Queue the prompt (one a variant); the operation id names them, comma-separated."""
        return VARIANT_SEPARATOR.join([await self.start_job(j) for j in self._jobs(request)])

    async def start_job(self, job: PromptJob) -> str:
        """Queue the job's prompt (unless ComfyUI already has it); return the prompt id."""
        workflow = job.workflow
        prompt_id = prompt_id_for(job.job_id)
        extra = {"prompt_id": prompt_id, "job_id": job.job_id}
        # Only a job that may have been submitted before asks ComfyUI first: the common
        # path is the upload (if any) and POST /prompt.
        doubtful = job.resumed or prompt_id in self._uncertain or prompt_id in self._early
        if doubtful and await self.timing.retry.call(lambda: self._known(prompt_id), extra):
            _LOGGER.info("comfyui already has the prompt; not queueing again", extra=extra)
            self._uncertain.discard(prompt_id)
            return prompt_id
        await self._submit(job, prompt_id, extra, again=False)
        _LOGGER.info("comfyui prompt queued (workflow %s)", workflow.name, extra=extra)
        return prompt_id

    async def _submit(
        self,
        job: PromptJob,
        prompt_id: str,
        extra: dict[str, str],
        *,
        again: bool,
    ) -> None:
        """Subscribe, upload the input (if any), queue the prompt; `again` re-uploads."""
        # Connect first: ComfyUI does not replay the events of a prompt to a late socket
        # (and a connection forgets the uploads, which a restarted server may have lost).
        # Subscribed once connected, so only a later reconnect queues a RECONNECTED.
        await self._hub.wait_connected(self.timing.connect_timeout)
        self._subscribe_early(prompt_id)
        image = None
        if job.upload is not None:
            image = await self.uploads.value_for(job.upload, extra, again=again)
        graph = fill(job.workflow, job.inputs(image))
        failures = 0

        async def send() -> None:
            nonlocal failures
            # A failed answer may still have queued the prompt: look before sending again.
            if failures and await self._known(prompt_id):
                return
            failures += 1
            await self.client.submit(graph, self.client_id, prompt_id)

        self._uncertain.add(prompt_id)
        try:
            await self.timing.retry.call(send, extra)
        except PermanentProviderError:
            self._uncertain.discard(prompt_id)  # refused: nothing was queued
            self._drop_early(prompt_id)
            raise
        self._uncertain.discard(prompt_id)

    def _subscribe_early(self, prompt_id: str) -> None:
        self._drop_early(prompt_id)
        if len(self._early) >= MAX_EARLY:  # never followed (a job that died): oldest goes
            self._drop_early(next(iter(self._early)))
        self._early[prompt_id] = self._hub.subscribe(prompt_id)

    def _drop_early(self, prompt_id: str) -> None:
        sub = self._early.pop(prompt_id, None)
        if sub is not None:
            sub.close()

    async def _known(self, prompt_id: str) -> bool:
        """Say whether ComfyUI holds the prompt (queued, running or finished)."""
        if await self.client.queue_placement(prompt_id) is not Placement.UNKNOWN:
            return True
        return await self.client.history(prompt_id) is not None

    async def follow(
        self, operation_id: str, request: VideoRequest, report: ProgressCallback
    ) -> VideoOutput | Variants:
        # Not checked again: a job already queued runs whatever the settings became.
        prompt_ids = operation_id.split(VARIANT_SEPARATOR)
        jobs = self._jobs(request, check=False)
        outputs: list[VideoOutput] = []
        for index, (prompt_id, job) in enumerate(zip(prompt_ids, jobs, strict=True)):

            async def part(progress: Progress, index: int = index) -> None:
                share = (index * 100 + progress.percent) / len(jobs)
                await report(Progress(share, progress.estimated))

            files = await self.follow_job(prompt_id, job, part if len(jobs) > 1 else report)
            extra = {"prompt_id": prompt_id, "job_id": job.job_id}
            outputs.append(await self._open(files[0], extra))
        return outputs[0] if len(outputs) == 1 else Variants(tuple(outputs))

    async def follow_job(
        self, operation_id: str, job: PromptJob, report: ProgressCallback
    ) -> list[OutputFile]:
        """Wait for the prompt to end; return the output node's files (at least one)."""
        workflow = job.workflow
        early = self._early.pop(operation_id, None)
        follower = Follower(
            client=self.client,
            timing=self.timing,
            prompt_id=operation_id,
            job_id=job.job_id,
            workflow=workflow,
            sub=early or self._hub.subscribe(operation_id),
            reporter=ThrottledReporter(report, self.timing.report_interval),
            tracker=WorkflowProgress.for_graph(workflow.graph, workflow.output_node),
            fresh=early is not None,
        )
        try:
            files = await follower.run()
        except PromptLost:
            await self._lost(job, operation_id, follower.extra)
        finally:
            follower.sub.close()
        self._resubmitted.discard(operation_id)
        await follower.reporter.flush()
        _LOGGER.info("comfyui prompt finished", extra=follower.extra)
        return files

    async def _lost(self, job: PromptJob, prompt_id: str, extra: dict[str, str]) -> NoReturn:
        """Submit a lost prompt once more and raise a transient error; lost twice: fail."""
        if prompt_id in self._resubmitted:
            self._resubmitted.discard(prompt_id)
            raise PermanentProviderError(
                ErrorCode.LOST_BY_PROVIDER,
                f"ComfyUI lost prompt {prompt_id} twice (restarted?); not submitting it again",
            )
        _LOGGER.warning("comfyui lost the prompt (restarted?); submitting it again", extra=extra)
        await self._submit(job, prompt_id, extra, again=True)
        self._resubmitted.add(prompt_id)
        # Transient: the caller records the attempt and follows again, from the early events.
        raise TransientProviderError(
            f"ComfyUI lost prompt {prompt_id} (restarted?); submitted it again",
            ErrorCode.LOST_BY_PROVIDER,
        )

    async def read_file(self, file: OutputFile, extra: dict[str, str]) -> tuple[bytes, str]:
        """Read a (small) output file whole: its bytes and content type, retried."""

        async def read() -> tuple[bytes, str]:
            response = await self.client.open_view(file)
            try:
                return await response.read(), response.content_type
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientProviderError(f"reading a ComfyUI output failed: {exc}") from exc
            finally:
                response.release()

        return await self.timing.retry.call(read, extra)

    async def _open(self, file: OutputFile, extra: dict[str, str]) -> StreamedOutput:
        response = await self.timing.retry.call(lambda: self.client.open_view(file), extra)
        kind = response.content_type
        if not kind or kind == "application/octet-stream":
            kind = "video/mp4"
        return StreamedOutput(response, kind, self.timing.chunk_size)

    async def cancel(self, operation_id: str) -> None:
        for prompt_id in operation_id.split(VARIANT_SEPARATOR):
            await self._cancel_prompt(prompt_id)

    async def _cancel_prompt(self, operation_id: str) -> None:
        extra = {"prompt_id": operation_id}
        self._drop_early(operation_id)
        self._resubmitted.discard(operation_id)
        # Delete first, then interrupt: a prompt that starts in between is still stopped.
        for action in (self.client.delete_pending, self.client.interrupt):
            try:
                await action(operation_id)
            except ProviderError as exc:
                _LOGGER.info("comfyui cancel step failed: %s", exc.message, extra=extra)
            except Exception:
                _LOGGER.exception("comfyui cancel step crashed", extra=extra)

    async def close(self) -> None:
        for prompt_id in list(self._early):
            self._drop_early(prompt_id)
        await self._hub.close()
        await self.client.close()
