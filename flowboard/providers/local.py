"""The offline default: render a real H.264 MP4 on this machine with PyAV.

A render lives only in this process, so after a restart `follow()` simply renders
again from the request (the operation id carries nothing but the job id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from flowboard.config import LocalProviderSettings
from flowboard.media.render import RenderCancelled, RenderSpec, frame_size, render_video
from flowboard.providers.base import (
    InvalidVideoRequest,
    MediaKind,
    Progress,
    ProgressCallback,
    Variants,
    VideoOutput,
    VideoRequest,
)
from flowboard.providers.spec import ProviderContext, ProviderSpec

_LOGGER = logging.getLogger(__name__)
ASPECTS = ("16:9", "9:16", "1:1")
RESOLUTIONS = ("480p", "720p", "1080p")
MAX_SECONDS = 60
RENDER_NICENESS = 10


def _lower_priority() -> None:
    """In a render thread: yield the CPU to the request path (Linux nice is per thread).

    The encoder's and painter's own threads start from this one and inherit it.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RENDER_NICENESS)


@dataclass
class FileOutput:
    """A rendered file, streamed in chunks and deleted once read."""

    path: Path
    content_type: str = "video/mp4"
    chunk_size: int = 1 << 20

    async def chunks(self) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self.path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, self.chunk_size):
                yield chunk
        finally:
            handle.close()
            self.path.unlink(missing_ok=True)


@dataclass
class LocalProvider:
    """Renders videos in worker threads, a bounded number at a time."""

    settings: LocalProviderSettings
    work_dir: Path
    max_parallel: int = 2
    name: str = "local"
    _slots: asyncio.Semaphore = field(init=False)
    _pool: ThreadPoolExecutor = field(init=False)
    _cancels: dict[str, threading.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_parallel)
        # Own threads: a lowered priority cannot be raised again by an unprivileged
        # process, so they must not be the loop's shared default executor.
        self._pool = ThreadPoolExecutor(
            self.max_parallel, thread_name_prefix="flowboard-render", initializer=_lower_priority
        )
        self.work_dir.mkdir(parents=True, exist_ok=True)

    @property
    def deadline_seconds(self) -> float:
        return self.settings.deadline_seconds

    def validate(self, request: VideoRequest) -> None:
        if request.aspect_ratio not in ASPECTS:
            raise InvalidVideoRequest(f"aspectRatio must be one of {', '.join(ASPECTS)}")
        if request.resolution not in RESOLUTIONS:
            raise InvalidVideoRequest(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        if not 1 <= request.duration_seconds <= MAX_SECONDS:
            raise InvalidVideoRequest(f"durationSeconds must be between 1 and {MAX_SECONDS}")
        if request.fps is not None and not float(request.fps).is_integer():
            raise InvalidVideoRequest("fps: the local renderer takes whole frame rates")

    async def start(self, request: VideoRequest) -> str:
        return f"local:{request.job_id}"

    async def follow(
        self, operation_id: str, request: VideoRequest, report: ProgressCallback
    ) -> VideoOutput | Variants:
        """Render the video, or `variants` of them one after another with seeds seed+i."""
        width, height = frame_size(request.aspect_ratio, request.resolution)
        spec = RenderSpec(
            width=width,
            height=height,
            fps=int(request.fps or self.settings.fps),
            duration_seconds=float(request.duration_seconds),
            prompt=request.prompt,
            image=request.first_frame.data if request.first_frame else None,
            seed=request.seed,
        )
        count = request.variants
        cancel = self._cancels.setdefault(operation_id, threading.Event())
        outs: list[Path] = []
        try:
            for index in range(count):
                seed = (request.seed or 0) + index if index or request.seed is not None else None
                out = self.work_dir / f"{request.job_id}-{index}-{secrets.token_hex(4)}.mp4"
                outs.append(out)

                async def part(progress: Progress, index: int = index) -> None:
                    await report(Progress((index * 100 + progress.percent) / count))

                async with self._slots:
                    await self._render(replace(spec, seed=seed), out, cancel, part)
        except BaseException:
            for out in outs:
                await asyncio.to_thread(out.unlink, missing_ok=True)
            raise
        finally:
            self._cancels.pop(operation_id, None)
        if count == 1:
            return FileOutput(outs[0])
        return Variants(tuple(FileOutput(out) for out in outs))

    async def _render(
        self, spec: RenderSpec, out: Path, cancel: threading.Event, report: ProgressCallback
    ) -> None:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()

        def schedule(percent: float) -> None:
            pending.add(loop.create_task(report(Progress(percent))))

        def on_progress(fraction: float) -> None:
            # Called in the render thread: hop to the loop, never block the render.
            loop.call_soon_threadsafe(schedule, min(99.0, fraction * 100))

        try:
            await loop.run_in_executor(self._pool, render_video, spec, out, on_progress, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the thread notices between frames
            raise
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def cancel(self, operation_id: str) -> None:
        event = self._cancels.get(operation_id)
        if event is not None:
            event.set()

    async def close(self) -> None:
        for event in self._cancels.values():
            event.set()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _build(settings: LocalProviderSettings, context: ProviderContext) -> dict[MediaKind, Any]:
    from flowboard.providers.local_image import LocalImageProvider

    return {
        MediaKind.VIDEO: LocalProvider(settings, context.work_dir),
        MediaKind.IMAGE: LocalImageProvider(),
    }


SPEC = ProviderSpec(
    name="local",
    settings_model=LocalProviderSettings,
    build=_build,
    media=frozenset({MediaKind.VIDEO, MediaKind.IMAGE}),
)

__all__ = ["SPEC", "FileOutput", "LocalProvider", "RenderCancelled"]
