"""Veo video generation through google-genai, on the Gemini API or Vertex AI.

One `follow()` is one coroutine that sleeps between polls, so thousands can be in
flight. Retries are ours alone: the SDK's own resend is turned off (attempts=1).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from google.genai import types
from google.genai.client import AsyncClient
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from flowboard.config import VeoSettings
from flowboard.providers.base import (
    BytesOutput,
    ErrorCode,
    InputImage,
    PermanentProviderError,
    Progress,
    ProgressCallback,
    ProviderError,
    TransientProviderError,
    Variants,
    VideoOutput,
    VideoRequest,
)
from flowboard.providers.veo_client import VeoClient
from flowboard.providers.veo_errors import CALL_ERRORS, provider_error
from flowboard.providers.veo_gcs import GcsOutput
from flowboard.providers.veo_models import limits_for, model_of, validate_request
from flowboard.providers.veo_polling import poll_delays, timing_for

_LOGGER = logging.getLogger(__name__)

_PROGRESS_CEILING = 95.0  # an estimate never claims to be finished
_CANCEL_UNSUPPORTED = frozenset({404, 501})
_RPC_CANCELLED = 1  # google.rpc.Code.CANCELLED in a finished operation's error

T = TypeVar("T")
Extra = dict[str, object]
_CANCEL_ERRORS: tuple[type[BaseException], ...] = (ProviderError, *CALL_ERRORS)


def estimate_percent(elapsed: float, typical: float) -> float:
    """Guess progress from elapsed time: grows towards, and never reaches, 95%."""
    return _PROGRESS_CEILING * (1.0 - math.exp(-max(0.0, elapsed) / typical))


async def _mapped(
    action: str,
    call: Callable[[], Awaitable[T]],
    not_found: ErrorCode = ErrorCode.PROVIDER_ERROR,
) -> T:
    """Run one SDK call, turning library exceptions into provider errors."""
    try:
        return await call()
    except CALL_ERRORS as error:
        raise provider_error(error, action, not_found=not_found) from error


def _log_retry(action: str, extra: Extra, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    detail = error.message if isinstance(error, ProviderError) else repr(error)
    _LOGGER.warning(
        "veo %s failed, retrying: %s",
        action,
        detail,
        extra={**extra, "attempt": state.attempt_number},
    )


def _image(image: InputImage | None) -> types.Image | None:
    if image is None:
        return None
    return types.Image(image_bytes=image.data, mime_type=image.content_type)


def _bytes_output(data: bytes, content_type: str | None) -> VideoOutput:
    return BytesOutput(data, content_type or "video/mp4")


def _operation_error(error: dict[str, Any]) -> PermanentProviderError:
    code, message = error.get("code"), error.get("message") or "no message"
    kind = ErrorCode.CANCELLED if code == _RPC_CANCELLED else ErrorCode.PROVIDER_ERROR
    return PermanentProviderError(kind, f"Veo operation failed (code {code}): {message}")


def _empty_result(response: types.GenerateVideosResponse | None) -> PermanentProviderError:
    """Explain a finished operation that holds no video."""
    count = response.rai_media_filtered_count if response is not None else None
    reasons = (response.rai_media_filtered_reasons if response is not None else None) or []
    if count or reasons:
        detail = "; ".join(reasons) or "no reason given"
        return PermanentProviderError(
            ErrorCode.CONTENT_FILTERED, f"Veo filtered {count or len(reasons)} video(s): {detail}"
        )
    return PermanentProviderError(
        ErrorCode.EMPTY_RESULT, "Veo finished without a video and without a filter reason"
    )


@dataclass
class _Outage:
    """Log once when polls start failing and once when they recover."""

    extra: Extra
    failures: int = 0

    def failed(self, error: ProviderError) -> None:
        self.failures += 1
        if self.failures == 1:
            _LOGGER.warning("veo polls failing, still polling: %s", error.message, extra=self.extra)

    def recovered(self) -> None:
        if self.failures:
            _LOGGER.info("veo polls recovered after %d failures", self.failures, extra=self.extra)
            self.failures = 0


class VeoProvider:
    """Generate videos with Veo; satisfies `VideoProvider`."""

    name = "veo"

    def __init__(
        self,
        settings: VeoSettings,
        *,
        attempts: int = 5,
        retry_initial_seconds: float = 1.0,
        retry_max_seconds: float = 30.0,
        request_timeout_seconds: float = 120.0,
    ) -> None:
        self._settings = settings
        self._attempts = attempts
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._timeout = request_timeout_seconds
        self._client = VeoClient(settings, request_timeout_seconds)
        # Operations started here and not yet followed: when each began (monotonic), so
        # the first poll keeps to the schedule. A follow takes its entry out.
        self._begun: dict[str, float] = {}

    @property
    def deadline_seconds(self) -> float:
        return self._settings.deadline_seconds

    def validate(self, request: VideoRequest) -> None:
        """Raise InvalidVideoRequest for parameters or settings Veo would refuse."""
        validate_request(self._settings, request)

    async def start(self, request: VideoRequest) -> str:
        """Submit one generate_videos call (retried on transient errors); return its name."""
        self.validate(request)
        extra: Extra = {"job_id": request.job_id}
        aio = await self._client.aio()
        model = model_of(self._settings, request)
        source = types.GenerateVideosSource(
            prompt=request.prompt.strip() or None, image=_image(request.first_frame)
        )
        config = self._config(request, model)
        operation = await self._retrying(
            "start",
            extra,
            lambda: aio.models.generate_videos(model=model, source=source, config=config),
        )
        if not operation.name:
            raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, "Veo returned no operation")
        self._begun[operation.name] = time.monotonic()
        _LOGGER.info(
            "veo operation started", extra={**extra, "operation": operation.name, "model": model}
        )
        return operation.name

    async def follow(
        self, operation_id: str, request: VideoRequest, report: ProgressCallback
    ) -> VideoOutput | Variants:
        """Poll until the operation ends; return its video(s) or raise ProviderError."""
        extra: Extra = {"operation": operation_id, "job_id": request.job_id}
        _LOGGER.info("following veo operation", extra=extra)
        try:
            output = await self._wait(operation_id, request, extra, report)
        except PermanentProviderError as error:
            _LOGGER.warning(
                "veo operation failed: %s", error.message, extra={**extra, "code": error.code}
            )
            raise
        _LOGGER.info("veo operation finished", extra=extra)
        return output

    async def cancel(self, operation_id: str) -> None:
        """Ask Veo to stop the operation; best effort, never raises."""
        extra: Extra = {"operation": operation_id}
        self._begun.pop(operation_id, None)
        try:
            status = await self._client.post_cancel(operation_id)
        except _CANCEL_ERRORS as error:
            _LOGGER.warning("veo cancel failed: %s: %s", type(error).__name__, error, extra=extra)
            return
        except Exception:  # best effort: the job is ending whatever happens here
            _LOGGER.exception("unexpected error cancelling veo operation", extra=extra)
            return
        if status in _CANCEL_UNSUPPORTED:
            _LOGGER.info("veo cancel not available (HTTP %d)", status, extra=extra)
        elif status >= 400:
            _LOGGER.warning("veo cancel refused (HTTP %d)", status, extra=extra)
        else:
            _LOGGER.info("veo cancel requested", extra=extra)

    async def close(self) -> None:
        """Close the SDK client's connections."""
        await self._client.close()

    # Calls -------------------------------------------------------------------------------

    async def _retrying(
        self,
        action: str,
        extra: Extra,
        call: Callable[[], Awaitable[T]],
        not_found: ErrorCode = ErrorCode.PROVIDER_ERROR,
    ) -> T:
        """Run one SDK call, retrying transient failures with jittered exponential backoff."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientProviderError),
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=self._retry_initial, max=self._retry_max),
            before_sleep=partial(_log_retry, action, extra),
            reraise=True,
        )
        return await retrying(_mapped, action, call, not_found)

    def _config(self, request: VideoRequest, model: str) -> types.GenerateVideosConfig:
        vertex = self._settings.mode == "vertex"
        audio = None
        if vertex and limits_for(model).audio:
            # Vertex wants the switch for audio models; default to the Gemini API behaviour.
            audio = True if request.generate_audio is None else request.generate_audio
        return types.GenerateVideosConfig(
            duration_seconds=request.duration_seconds,
            aspect_ratio=request.aspect_ratio,
            resolution=request.resolution,
            negative_prompt=request.negative_prompt or None,
            person_generation=request.person_generation,
            generate_audio=audio,
            seed=request.seed if vertex else None,
            enhance_prompt=request.enhance_prompt,
            last_frame=_image(request.last_frame),
            # Several variants are one operation (the wire's sampleCount).
            number_of_videos=request.variants if request.variants > 1 else None,
            # Unset: Vertex answers inline; set: it writes there and we read it back.
            output_gcs_uri=(self._settings.output_gcs_uri or None) if vertex else None,
        )

    async def _wait(
        self, operation_id: str, request: VideoRequest, extra: Extra, report: ProgressCallback
    ) -> VideoOutput | Variants:
        aio = await self._client.aio()
        vertex = self._settings.mode == "vertex"
        timing = timing_for(self._settings, model_of(self._settings, request))
        begun = self._begun.pop(operation_id, None)
        outage, started = _Outage(extra), begun or time.monotonic()
        # Started here: by the schedule. Resumed after a restart, or followed again after
        # a failed read: of unknown age, looked at soon (spread out), then by the schedule.
        delays = poll_delays(timing, 0.0 if begun is not None else None)
        await asyncio.sleep(next(delays))
        while True:  # ends when the operation does; the caller's deadline cancels it
            polled = await self._poll(operation_id, outage)
            if polled is not None and polled.get("done"):
                # Only now the SDK reads the answer, as its operations.get would have.
                operation = types.GenerateVideosOperation.from_api_response(polled, vertex)
                return await self._result(aio, operation, request, extra)
            if polled is not None:
                elapsed = time.monotonic() - started
                percent = estimate_percent(elapsed, timing.typical_seconds)
                await report(Progress(percent, estimated=True))
            del polled  # an answer kept per sleeping follow, thousands of them, for nothing
            await asyncio.sleep(next(delays))

    async def _poll(self, operation_id: str, outage: _Outage) -> dict[str, Any] | None:
        """Poll once; None when the poll failed in a way worth polling again."""
        try:
            polled = await _mapped(
                "poll",
                lambda: self._client.fetch_operation(operation_id),
                ErrorCode.LOST_BY_PROVIDER,
            )
        except TransientProviderError as error:
            outage.failed(error)
            return None
        outage.recovered()
        return polled

    async def _result(
        self,
        aio: AsyncClient,
        operation: types.GenerateVideosOperation,
        request: VideoRequest,
        extra: Extra,
    ) -> VideoOutput | Variants:
        if operation.error:
            raise _operation_error(operation.error)
        response = operation.response
        samples = (response.generated_videos if response is not None else None) or []
        videos = [
            s.video for s in samples if s.video is not None and (s.video.video_bytes or s.video.uri)
        ]
        if not videos:
            raise _empty_result(response)
        if request.variants == 1:
            return await self._output(aio, videos[0], extra)
        # Veo may withhold some of the videos for safety: the rest are the result.
        filtered = (response.rai_media_filtered_count if response is not None else None) or 0
        reasons = (response.rai_media_filtered_reasons if response is not None else None) or []
        outputs = tuple([await self._output(aio, video, extra) for video in videos])
        return Variants(outputs, filtered, tuple(reasons))

    async def _output(self, aio: AsyncClient, video: types.Video, extra: Extra) -> VideoOutput:
        if video.video_bytes:
            return _bytes_output(video.video_bytes, video.mime_type)
        return await self._download(aio, video, extra)

    async def _download(self, aio: AsyncClient, video: types.Video, extra: Extra) -> VideoOutput:
        uri = str(video.uri)
        if uri.startswith("gs://"):
            # Read lazily, as the caller stores it: never whole in memory.
            return GcsOutput(
                self._client,
                uri,
                video.mime_type or "video/mp4",
                delete_after=self._settings.delete_gcs_output,
                timeout_seconds=self._timeout,
                extra=extra,
            )
        if self._settings.mode == "vertex":
            message = f"Veo on Vertex gave a result URI Flowboard cannot read: {uri}"
            raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, message)
        try:
            data = await self._retrying(
                "download",
                extra,
                lambda: aio.files.download(file=video),
                ErrorCode.LOST_BY_PROVIDER,
            )
        except ValueError as error:  # the SDK could not make sense of the file URI
            message = f"Veo download failed: {error}"
            raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, message) from error
        _LOGGER.info("veo video downloaded", extra={**extra, "bytes": len(data)})
        return _bytes_output(data, video.mime_type)
