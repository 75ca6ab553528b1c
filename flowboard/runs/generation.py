"""GenerationProcessor: start a generation, follow it, store it, finalise the node.

One processor runs every node type that declares a `GenerationSpec` (video, image,
a plugin's): it owns the lifecycle — prepare, start with retries (`retries.py`), persist the
operation id, follow, report progress, store the outputs, finalise, add or update the
output node, cancel, resume — and asks the node type's spec only what differs by
media. `process_job()` creates the GeneratedAsset and returns; the provider job runs
in a background task that reports through `asset.updated` events, and the handler of
those events moves the task and, on completion, shows the take on the output node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pymongo.errors import DuplicateKeyError, PyMongoError

from flowboard.assets.model import (
    AssetError,
    AssetStatus,
    GeneratedAsset,
    asset_event,
)
from flowboard.assets.output import new_prefix
from flowboard.budgets.service import Budgets
from flowboard.canvas.model import Flow, Node
from flowboard.canvas.service import CanvasService
from flowboard.config import ExecutionSettings
from flowboard.costs.prices import PriceTable
from flowboard.db.outage import is_outage
from flowboard.events.bus import EventBus, on
from flowboard.events.types import AssetUpdated
from flowboard.ids import utcnow
from flowboard.models.execution import TaskError, TaskStatus
from flowboard.nodes.base import NodeType
from flowboard.nodes.kind import GenerationSpec, Inputs, StoredOutput, StoreTarget
from flowboard.providers.base import (
    ErrorCode,
    ProviderError,
    owns_call_retries,
)
from flowboard.providers.registry import ProviderRegistry
from flowboard.providers.spec import AnyProvider
from flowboard.runs.billing import RunBilling
from flowboard.runs.changes import TaskChange
from flowboard.runs.inputs import InputResolver
from flowboard.runs.jobs import JobRunner
from flowboard.runs.output_node import output_node_of
from flowboard.runs.port import Job, Launch, TaskUpdater
from flowboard.runs.progress import ProgressReporter
from flowboard.runs.queue import ProviderQueues
from flowboard.runs.retries import with_retries
from flowboard.runs.reuse import Reuse
from flowboard.runs.takes import new_asset, show_on_canvas
from flowboard.storage.base import Storage, StorageError
from flowboard.storage.space import is_storage_full
from flowboard.store.assets import AssetStore
from flowboard.tracing.context import span, traceparent

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class GenerationProcessor:
    """Runs the node types of `kinds` (name -> NodeType with a GenerationSpec)."""

    tasks: TaskUpdater
    assets: AssetStore
    canvas: CanvasService
    providers: ProviderRegistry
    storage: Storage
    bus: EventBus
    runner: JobRunner
    resolver: InputResolver
    settings: ExecutionSettings
    work_dir: Path
    kinds: dict[str, NodeType] = field(default_factory=dict)
    on_retry: Callable[[str], None] | None = None
    reuse: Reuse | None = None  # content keys and reuse of unchanged results
    prices: PriceTable | None = None  # the actual cost recorded on finished tasks
    budgets: Budgets | None = None  # reserve at start, settle at end (budgets/)
    queues: ProviderQueues | None = None  # per-provider concurrency limits
    _operations: dict[str, tuple[AnyProvider, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.billing = RunBilling(self.prices, self.budgets)

    def _spec(self, node_type: str) -> tuple[NodeType, GenerationSpec]:
        kind = self.kinds[node_type]
        assert kind.generation is not None  # only generation node types are given here
        return kind, kind.generation

    def _provider(self, spec: GenerationSpec, name: str | None) -> AnyProvider:
        return self.providers.get(name, spec.media)

    async def check(self, flow: Flow, node: Node) -> None:
        kind, spec = self._spec(node.type)
        data = kind.data_model.model_validate(node.data)
        provider = self._provider(spec, spec.provider_of(data))
        provider.validate(spec.request(data, "check", Inputs(checking=True)))
        if output_node_of(flow, node.id) is None:  # its first take adds one, wired to it
            self.canvas.limits.check_room(flow, nodes=1, edges=1)

    async def prepare(self, job: Job) -> Launch:
        kind, spec = self._spec(job.node.type)
        data = kind.data_model.model_validate(job.node.data)
        provider = self._provider(spec, spec.provider_of(data))
        key = await self.reuse.keys.key_of(job, spec, data, provider.name) if self.reuse else None
        if job.reuse and key is not None and self.reuse is not None:
            found = await self.reuse.find(job, key)
            if found is not None:
                change = await self.reuse.claim(job, found, key)
                return Launch(change, lambda: self._show_reused(job, found))
        reservation = await self.billing.reserve(job, spec, data, provider.name)
        asset = new_asset(job, spec, data, provider.name)
        # The trace context of the request goes with the record: a resumed job continues it.
        update = {"content_key": key, "reservation": reservation, "traceparent": traceparent()}
        asset = asset.model_copy(update=update)
        limited = self.queues is not None and self.queues.get(provider.name) is not None
        change = TaskChange(
            status=TaskStatus.QUEUED if limited else TaskStatus.PROCESSING,
            output_asset_id=asset.id,
            description=f"queued for {provider.name}"
            if limited
            else f"submitted to {provider.name}",
            add_attempt=True,
            content_key=key,
        )
        return Launch(
            change, lambda: self._begin(job, asset), self.billing.releaser(job, reservation)
        )

    def _show_reused(self, job: Job, asset: GeneratedAsset) -> None:
        shown = show_on_canvas(self.canvas, job.org_id, job.flow.id, asset)
        self.runner.spawn(f"{job.key}:shown", shown)

    async def process_job(self, job: Job) -> None:
        launch = await self.prepare(job)
        if launch.change.status is TaskStatus.COMPLETED:
            # A reused result ends the task, which schedules the next ones: the engine
            # calls us while scheduling, so the change is made outside this call.
            self.runner.spawn(f"{job.key}:reused", self._apply(job, launch))
        else:
            await self._apply(job, launch)

    async def _apply(self, job: Job, launch: Launch) -> None:
        if await self.tasks.update_task(job.execution_id, job.node.id, launch.change):
            launch.begin()
        elif launch.abandon is not None:  # e.g. cancelled meanwhile: the take never starts
            await launch.abandon()

    def _begin(self, job: Job, asset: GeneratedAsset) -> None:
        self.runner.spawn(job.key, self._drive(job, asset, new=True))

    async def resume(self, job: Job, asset_id: str) -> None:
        asset = await self.assets.get_any(asset_id)
        if asset is None:  # its first write was lost to a database outage: start afresh
            kind, spec = self._spec(job.node.type)
            data = kind.data_model.model_validate(job.node.data)
            provider = self._provider(spec, spec.provider_of(data))
            fresh = new_asset(job, spec, data, provider.name)
            update = {"id": asset_id, "storage_prefix": new_prefix(asset_id)}
            self.runner.spawn(job.key, self._drive(job, fresh.model_copy(update=update), new=True))
        elif asset.status.terminal:
            self.publish(asset)  # the end was stored but not applied: apply it now
        else:
            self.runner.spawn(job.key, self._drive(job, asset))

    async def cancel(self, job: Job) -> None:
        if not self.runner.cancel(job.key):
            _LOGGER.info("no running job to cancel", extra={"job": job.key})

    # -- the background job ------------------------------------------------------

    async def _drive(self, job: Job, asset: GeneratedAsset, new: bool = False) -> None:
        """Run the job; if the database goes away, end it for the reaper to resume."""
        try:
            with span("flowboard.job", asset.traceparent, **job.ids(asset.id)):
                await self._drive_once(job, asset, new)
        except Exception as exc:
            if not is_outage(exc):
                raise
            _LOGGER.info(
                "database unavailable; the job resumes when it is back: %s",
                exc,
                extra={"asset_id": asset.id, "execution_id": job.execution_id},
            )

    async def _drive_once(self, job: Job, asset: GeneratedAsset, new: bool) -> None:
        """Run the job to its end; `new` when its asset record is still to be written.

        The record is written here, inside the job, so that the job's key is taken before
        its task can be seen PROCESSING (the reaper leaves a running key alone).
        """
        kind, spec = self._spec(job.node.type)
        provider = self._provider(spec, asset.provider)
        extra = {"asset_id": asset.id, "execution_id": job.execution_id, "node_id": job.node.id}
        if new and not await self._insert(job, asset):
            return
        try:
            async with self._slot(job, provider.name) as since:
                await self._generate(job, asset, kind, provider, not new, since)
        except asyncio.CancelledError:
            if not self.runner.cancel_requested(job.key):
                raise  # shutting down: the job resumes after restart
            await self._cancelled(asset, provider)
        except TimeoutError:
            await self._cancel_at_provider(asset.id, provider)
            message = f"{provider.name} did not finish within {provider.deadline_seconds:.0f} s"
            await self._end(asset, AssetStatus.FAILED, ErrorCode.TIMEOUT.value, message)
        except ProviderError as exc:
            _LOGGER.info("generation failed: %s", exc.message, extra=extra)
            await self._end(asset, AssetStatus.FAILED, exc.code.value, exc.message)
        except StorageError as exc:
            full = is_storage_full(exc)
            code = ErrorCode.STORAGE_FULL if full else ErrorCode.STORAGE_ERROR
            await self._end(asset, AssetStatus.FAILED, code.value, str(exc))
        except Exception as exc:
            if is_outage(exc):
                raise
            if is_storage_full(exc):  # e.g. ENOSPC while rendering or spooling
                await self._end(asset, AssetStatus.FAILED, ErrorCode.STORAGE_FULL.value, str(exc))
                return
            _LOGGER.exception("generation crashed", extra=extra)
            await self._end(asset, AssetStatus.FAILED, ErrorCode.INTERNAL.value, type(exc).__name__)

    @contextlib.asynccontextmanager
    async def _slot(self, job: Job, provider: str) -> AsyncIterator[datetime | None]:
        """Hold a slot of a limited provider (QUEUED until then); yield when it was taken."""
        queue = self.queues.get(provider) if self.queues is not None else None
        if queue is None:
            yield None
            return

        async def moved(position: int, eta: float | None) -> None:
            change = TaskChange(
                status=TaskStatus.QUEUED,
                queue_position=position,
                eta_seconds=eta,
                description=f"queued for {provider} (position {position})",
            )
            await self.tasks.update_task(job.execution_id, job.node.id, change)

        async with queue.slot(job.interactive, moved):
            change = TaskChange(
                status=TaskStatus.PROCESSING, description=f"submitted to {provider}"
            )
            await self.tasks.update_task(job.execution_id, job.node.id, change)
            yield utcnow()

    async def _insert(self, job: Job, asset: GeneratedAsset) -> bool:
        try:
            await self.assets.insert(asset)
        except DuplicateKeyError:
            return True  # written by an earlier try whose answer was lost
        except PyMongoError as exc:
            if is_outage(exc):
                raise
            _LOGGER.warning("asset record not written: %s", exc, extra={"asset_id": asset.id})
            await self._fail_task(job, ErrorCode.INTERNAL.value, "asset record not written")
            return False
        return True

    async def _generate(
        self,
        job: Job,
        asset: GeneratedAsset,
        kind: NodeType,
        provider: AnyProvider,
        resumed: bool,
        since: datetime | None = None,
    ) -> None:
        """Generate; the provider's deadline runs from `since` (a queue slot) or creation."""
        spec = kind.generation
        assert spec is not None
        elapsed = (utcnow() - (since or asset.created_at)).total_seconds()
        async with asyncio.timeout(max(0.0, provider.deadline_seconds - elapsed)):
            data = kind.data_model.model_validate(job.node.data)
            inputs = await self.resolver.inputs(job, spec, data, resumed=resumed)
            request = spec.request(data, asset.id, inputs)
            provider.validate(request)
            operation = asset.operation_id
            if operation is None:
                with span("provider.start", provider=provider.name, **job.ids(asset.id)):
                    operation = await self._start(job, asset, provider, request)
                # Persist the operation before anything else, so a restart can follow it.
                await self.assets.record_operation(asset.id, operation)
            self._operations[asset.id] = (provider, operation)
            # A fixed prefix makes a re-driven job overwrite, never duplicate, its files.
            prefix = asset.storage_prefix or new_prefix(asset.id)
            if asset.storage_prefix is None:
                await self.assets.set_fields(asset.id, {"storagePrefix": prefix})
            reporter = ProgressReporter(self.tasks, job, asset.id, self.settings)
            target = StoreTarget(self.storage, self.work_dir, asset.id, prefix)
            try:

                async def follow_and_store() -> StoredOutput:
                    with span("provider.follow", provider=provider.name, **job.ids(asset.id)):
                        output = await provider.follow(operation, request, reporter)
                    return await spec.store(output, target)

                stored = await self._with_retries(job, asset, follow_and_store)
                await reporter.flush()  # progress events before the completion's
            finally:
                await reporter.close()
                self._operations.pop(asset.id, None)
        done = await self.assets.finish(asset.id, AssetStatus.COMPLETED, stored.asset_fields())
        if done is not None:
            self.publish(done)

    async def _start(
        self, job: Job, asset: GeneratedAsset, provider: AnyProvider, request: Any
    ) -> str:
        """Submit the job; retried here unless the provider retries its own calls."""
        if owns_call_retries(provider):
            return await provider.start(request)
        return await self._with_retries(job, asset, lambda: provider.start(request))

    async def _with_retries(
        self, job: Job, asset: GeneratedAsset, call: Callable[[], Awaitable[T]]
    ) -> T:
        return await with_retries(
            job, asset, call, settings=self.settings, tasks=self.tasks, on_retry=self.on_retry
        )

    async def _cancel_at_provider(self, asset_id: str, provider: AnyProvider) -> None:
        found = self._operations.get(asset_id)
        operation = found[1] if found else None
        if operation is None:
            stored = await self.assets.get_any(asset_id)
            operation = stored.operation_id if stored else None
        if operation is not None:
            await provider.cancel(operation)

    async def _cancelled(self, asset: GeneratedAsset, provider: AnyProvider) -> None:
        await self._cancel_at_provider(asset.id, provider)
        await self._end(asset, AssetStatus.CANCELLED, ErrorCode.CANCELLED.value, "cancelled")

    async def _end(
        self, asset: GeneratedAsset, status: AssetStatus, code: str, message: str
    ) -> None:
        error = AssetError(code=code, message=message).to_json()
        ended = await self.assets.finish(asset.id, status, {"error": error})
        if ended is not None:
            self.publish(ended)

    def publish(self, asset: GeneratedAsset) -> None:
        self.bus.publish(asset_event(asset))

    # -- finalisation, driven by asset.updated --------------------------------------

    @on(AssetUpdated.EVENT, final=True)
    async def on_asset_updated(self, event: AssetUpdated) -> None:
        """Apply an asset's end to its task; on completion show the output node first."""
        if not event.execution_id:
            return
        status = AssetStatus(event.status)
        if not status.terminal:
            return  # progress is the task's own: reporters write it there directly
        if status is AssetStatus.COMPLETED:
            asset = await self.assets.get_any(event.asset_id)
            actual = self.billing.actual_cost(asset)
            await self.billing.settle(asset, actual.get("actual_cost", 0.0))
            task = await self.tasks.task_status(event.execution_id, event.node_id)
            if task is None or task.terminal:
                return  # ended meanwhile (cancelled, or a listener failed it)
            if asset is not None:
                await show_on_canvas(self.canvas, event.org_id, event.flow_id, asset)
            warnings = tuple(asset.warnings) if asset is not None else ()
            change = TaskChange(
                status=TaskStatus.COMPLETED,
                output_url=event.url,
                description="; ".join(("completed", *warnings)),
                warnings=warnings,
                **actual,
            )
        else:
            await self.billing.settle(await self.assets.get_any(event.asset_id), 0.0)
            error = TaskError(code=event.error_code or "failed", message=event.error_message or "")
            task_status = (
                TaskStatus.CANCELLED if status is AssetStatus.CANCELLED else TaskStatus.FAILED
            )
            change = TaskChange(status=task_status, error=error, description=error.message)
        await self.tasks.update_task(event.execution_id, event.node_id, change)

    async def _fail_task(self, job: Job, code: str, message: str) -> None:
        change = TaskChange(status=TaskStatus.FAILED, error=TaskError(code=code, message=message))
        await self.tasks.update_task(job.execution_id, job.node.id, change)
