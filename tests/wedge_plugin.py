"""A provider that wedges the event loop: `start()` blocks in time.sleep (test_watchdog).

Used as `image_gen` with `provider: "wedge"`; declared outside `flowboard/`, as any
plugin is. It stands for any bug that blocks the loop for good.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from flowboard.providers.base import ImageRequest, MediaKind, MediaOutput, ProgressCallback
from flowboard.providers.spec import ProviderContext, ProviderSpec


class WedgeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    block_seconds: float = 3600.0
    # Where set, only the first start blocks (it creates the file): a restarted
    # service resumes the job without wedging again.
    once_file: str = ""


@dataclass
class WedgeProvider:
    settings: WedgeSettings
    name: str = "wedge"

    @property
    def deadline_seconds(self) -> float:
        return 30.0

    def validate(self, request: ImageRequest) -> None:
        return None

    async def start(self, request: ImageRequest) -> str:
        once = Path(self.settings.once_file) if self.settings.once_file else None
        if once is None or not once.exists():
            if once is not None:
                once.touch()
            time.sleep(self.settings.block_seconds)  # noqa: ASYNC251 - the bug: it blocks the loop
        return f"wedge:{request.job_id}"

    async def follow(
        self, operation_id: str, request: ImageRequest, report: ProgressCallback
    ) -> list[MediaOutput]:
        return []

    async def cancel(self, operation_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


def _build(settings: WedgeSettings, context: ProviderContext) -> dict[MediaKind, Any]:
    return {MediaKind.IMAGE: WedgeProvider(settings)}


SPEC = ProviderSpec(
    name="wedge",
    settings_model=WedgeSettings,
    build=_build,
    media=frozenset({MediaKind.IMAGE}),
)
