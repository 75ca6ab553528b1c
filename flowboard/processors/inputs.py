"""Resolve a video node's inputs from the nodes wired into it."""

from __future__ import annotations

from dataclasses import dataclass

from flowboard.assets.model import AssetType, GeneratedAsset, StorageInfo
from flowboard.canvas.model import Node
from flowboard.nodes.video_gen import VideoGenNodeData
from flowboard.processors.base import Job
from flowboard.providers.base import (
    ErrorCode,
    InputImage,
    PermanentProviderError,
    VideoRequest,
)
from flowboard.storage.base import ObjectNotFound, Storage
from flowboard.store.assets import AssetStore

IMAGE_SOURCES = frozenset({"asset", "generated_asset", "video_gen"})


def upstream_nodes(job: Job) -> list[Node]:
    ids = [e.source for e in job.flow.edges if e.target == job.node.id]
    return [n for n in (job.flow.node(i) for i in ids) if n is not None]


def has_image_input(job: Job) -> bool:
    return any(n.type in IMAGE_SOURCES for n in upstream_nodes(job))


def video_request(
    data: VideoGenNodeData,
    job_id: str,
    prompt: str,
    first_frame: InputImage | None = None,
    last_frame: InputImage | None = None,
) -> VideoRequest:
    """The provider request for a node's parameters and resolved inputs."""
    return VideoRequest(
        job_id=job_id,
        prompt=prompt,
        duration_seconds=data.duration_seconds,
        aspect_ratio=data.aspect_ratio,
        resolution=data.resolution,
        negative_prompt=data.negative_prompt,
        model=data.model,
        fps=data.fps,
        seed=data.seed,
        person_generation=data.person_generation,
        generate_audio=data.generate_audio,
        enhance_prompt=data.enhance_prompt,
        workflow=data.workflow,
        first_frame=first_frame,
        last_frame=last_frame,
    )


def _missing(message: str) -> PermanentProviderError:
    return PermanentProviderError(ErrorCode.INPUT_MISSING, message)


@dataclass
class InputResolver:
    """Turns upstream nodes into the prompt and frames of a VideoRequest."""

    assets: AssetStore
    storage: Storage
    max_image_bytes: int

    async def request(self, job: Job, asset_id: str) -> VideoRequest:
        data = VideoGenNodeData.model_validate(job.node.data)
        texts: list[str] = []
        first: InputImage | None = None
        for node in upstream_nodes(job):
            if node.type == "prompt" and node.data.get("text"):
                texts.append(str(node.data["text"]))
            elif node.type in IMAGE_SOURCES and first is None:
                first = await self._image_of(job, node)
        if data.prompt:
            texts.append(data.prompt)
        if not texts and first is None:
            raise _missing("no prompt: connect a prompt node or set the node's prompt")
        last = None
        if data.last_frame_asset_id:
            last = await self._asset_image(job.org_id, data.last_frame_asset_id)
        return video_request(data, asset_id, "\n".join(texts), first, last)

    async def _image_of(self, job: Job, node: Node) -> InputImage:
        if node.type == "video_gen":
            found = await self.assets.latest_completed(job.org_id, job.flow.id, node.id)
            if found is None:
                raise _missing(f"upstream node {node.id!r} has no finished video yet")
            return await self._still(found)
        asset_id = node.data.get("assetId")
        if not asset_id:
            raise _missing(f"upstream node {node.id!r} has no asset")
        return await self._asset_image(job.org_id, str(asset_id))

    async def _asset_image(self, org_id: str, asset_id: str) -> InputImage:
        asset = await self.assets.get(org_id, asset_id)
        if asset is None:
            raise _missing(f"asset {asset_id!r} not found")
        return await self._still(asset)

    async def _still(self, asset: GeneratedAsset) -> InputImage:
        """The image of an image asset, or the poster frame of a video asset."""
        stored: StorageInfo | None = (
            asset.storage if asset.type is AssetType.IMAGE else asset.poster
        )
        if stored is None:
            raise _missing(f"asset {asset.id!r} has no stored image")
        return InputImage(await self._read(stored.key), stored.content_type)

    async def _read(self, key: str) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in self.storage.get_stream(key):
                size += len(chunk)
                if size > self.max_image_bytes:
                    raise _missing(
                        f"input image {key!r} is larger than {self.max_image_bytes} bytes"
                    )
                parts.append(chunk)
        except ObjectNotFound as exc:
            raise _missing(f"stored input {key!r} is missing") from exc
        return b"".join(parts)
