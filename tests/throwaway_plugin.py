"""A throw-away node type and provider, declared outside `flowboard/` (see test_plugins).

`stamp` "generates" a text file: the prompt, upper-cased, once per requested copy.
It exists to show that a node type and a provider need no edit to Flowboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowboard.assets.model import AssetType, Workflow
from flowboard.nodes.base import NodeType
from flowboard.nodes.kind import Inputs, StoredFile, StoredOutput, StoreTarget
from flowboard.providers.base import (
    BytesOutput,
    ImageRequest,
    InvalidProviderRequest,
    MediaKind,
    MediaOutput,
    Progress,
    ProgressCallback,
)
from flowboard.providers.spec import ProviderContext, ProviderSpec
from flowboard.schema import ApiModel


class StampSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    suffix: str = "!"


@dataclass
class StampProvider:
    settings: StampSettings
    name: str = "stamp"

    @property
    def deadline_seconds(self) -> float:
        return 30.0

    def validate(self, request: ImageRequest) -> None:
        if "forbidden" in request.prompt:
            raise InvalidProviderRequest("stamp refuses the word 'forbidden'")

    async def start(self, request: ImageRequest) -> str:
        return f"stamp:{request.job_id}"

    async def follow(
        self, operation_id: str, request: ImageRequest, report: ProgressCallback
    ) -> list[MediaOutput]:
        await report(Progress(50.0))
        text = (request.prompt.upper() + self.settings.suffix).encode()
        return [BytesOutput(text, "text/plain") for _ in range(request.count)]

    async def cancel(self, operation_id: str) -> None:
        return None

    async def close(self) -> None:
        return None


def _build(settings: StampSettings, context: ProviderContext) -> dict[MediaKind, Any]:
    return {MediaKind.IMAGE: StampProvider(settings)}


SPEC = ProviderSpec(
    name="stamp",
    settings_model=StampSettings,
    build=_build,
    media=frozenset({MediaKind.IMAGE}),
)


class StampNodeData(ApiModel):
    prompt: str = Field(default="", max_length=100)
    copies: int = Field(default=1, ge=1, le=3)


@dataclass(frozen=True)
class StampGeneration:
    media: MediaKind = MediaKind.IMAGE
    asset_type: AssetType = AssetType.IMAGE
    max_input_images: int = 0

    def provider_of(self, data: StampNodeData) -> str | None:
        return "stamp"

    def references(self, data: StampNodeData) -> Mapping[str, str]:
        return {}

    def request(self, data: StampNodeData, job_id: str, inputs: Inputs) -> ImageRequest:
        return ImageRequest(job_id=job_id, prompt=inputs.prompt(data.prompt), count=data.copies)

    def workflow(self, data: StampNodeData, has_image_input: bool) -> Workflow:
        return Workflow.TEXT_TO_IMAGE

    async def store(self, output: list[MediaOutput], target: StoreTarget) -> StoredOutput:
        files = []
        for index, item in enumerate(output):
            key = f"{target.prefix}-{index}.txt"
            stored = await target.storage.put_stream(key, item.chunks(), item.content_type)
            files.append(StoredFile(stored, await target.storage.url_for(stored.key)))
        return StoredOutput(files=tuple(files))


NODE_TYPE = NodeType("test_stamp", StampNodeData, generation=StampGeneration())
