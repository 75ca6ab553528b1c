"""Retry one provider step on transient errors, recording each retry on the task."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from flowboard.assets.model import GeneratedAsset
from flowboard.config import ExecutionSettings
from flowboard.providers.base import ProviderError, TransientProviderError
from flowboard.runs.changes import TaskChange
from flowboard.runs.port import Job, TaskUpdater

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


def _reason(error: BaseException | None) -> str:
    """Say why a provider step is retried, in the provider's words."""
    if isinstance(error, ProviderError):
        return error.message
    return str(error) or type(error).__name__ if error is not None else "unknown error"


async def with_retries(
    job: Job,
    asset: GeneratedAsset,
    call: Callable[[], Awaitable[T]],
    *,
    settings: ExecutionSettings,
    tasks: TaskUpdater,
    on_retry: Callable[[str], None] | None,
) -> T:
    """Retry a provider step on transient errors per the policy; record each retry."""
    failed: list[BaseException | None] = [None]

    def keep_error(state: RetryCallState) -> None:
        # The next attempt starts with its outcome reset: keep the reason for it here.
        failed[0] = state.outcome.exception() if state.outcome else None

    retrying = AsyncRetrying(
        stop=stop_after_attempt(settings.provider_attempts),
        wait=wait_exponential_jitter(
            initial=settings.provider_backoff_seconds, max=settings.provider_backoff_max_seconds
        ),
        retry=retry_if_exception_type(TransientProviderError),
        before_sleep=keep_error,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                await _record_retry(job, asset, attempt.retry_state, failed[0], tasks, on_retry)
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last error")


async def _record_retry(
    job: Job,
    asset: GeneratedAsset,
    state: RetryCallState,
    error: BaseException | None,
    tasks: TaskUpdater,
    on_retry: Callable[[str], None] | None,
) -> None:
    _LOGGER.info(
        "retrying provider call: %s",
        error,
        extra={
            "asset_id": asset.id,
            "execution_id": job.execution_id,
            "node_id": job.node.id,
            "attempt": state.attempt_number,
        },
    )
    if on_retry is not None:
        on_retry(job.node.type)
    await tasks.update_task(
        job.execution_id,
        job.node.id,
        TaskChange(add_attempt=True, description=f"retrying after: {_reason(error)}"),
    )
