"""`video_gen`: generate a video from a prompt and an optional first frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from flowboard.assets.model import AssetType, Workflow
from flowboard.assets.output import store_video
from flowboard.ids import Id
from flowboard.nodes.base import NodeType
from flowboard.nodes.kind import Inputs, StoredFile, StoredOutput, StoreTarget
from flowboard.providers.base import MediaKind, MediaOutput, Variants, VideoRequest
from flowboard.schema import ApiModel

AspectRatio = Literal["16:9", "9:16", "1:1"]
Resolution = Literal["480p", "720p", "1080p"]
ProviderName = str


class VideoGenNodeData(ApiModel):
    prompt: str = Field(default="", max_length=4_000)
    negative_prompt: str | None = Field(default=None, max_length=4_000)
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    model: str | None = Field(default=None, max_length=200)
    duration_seconds: int = Field(default=4, ge=1, le=60)
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    fps: float | None = Field(default=None, ge=1, le=60)  # 23.976, 29.97 allowed
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    person_generation: str | None = Field(default=None, max_length=50)
    generate_audio: bool | None = None
    enhance_prompt: bool | None = None
    last_frame_asset_id: Id | None = None
    workflow: str | None = Field(default=None, max_length=100)
    # Videos made from one request, stored as the outputs of one asset (Veo: sampleCount).
    variants: int = Field(default=1, ge=1, le=4)


@dataclass(frozen=True)
class VideoGeneration:
    """A video from the prompt; the first wired image is its first frame."""

    media: MediaKind = MediaKind.VIDEO
    asset_type: AssetType = AssetType.VIDEO
    max_input_images: int = 1

    def provider_of(self, data: VideoGenNodeData) -> str | None:
        return data.provider

    def references(self, data: VideoGenNodeData) -> dict[str, str]:
        return {"last_frame": data.last_frame_asset_id} if data.last_frame_asset_id else {}

    def request(self, data: VideoGenNodeData, job_id: str, inputs: Inputs) -> VideoRequest:
        return VideoRequest(
            job_id=job_id,
            prompt=inputs.prompt(data.prompt),
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
            first_frame=inputs.images[0] if inputs.images else None,
            last_frame=inputs.references.get("last_frame"),
            resumed=inputs.resumed,
            variants=data.variants,
        )

    def workflow(self, data: VideoGenNodeData, has_image_input: bool) -> Workflow:
        return Workflow.IMAGE_TO_VIDEO if has_image_input else Workflow.TEXT_TO_VIDEO

    async def store(self, output: MediaOutput | Variants, target: StoreTarget) -> StoredOutput:
        """Store each video (the first is the main one, with the poster); warn of filtered."""
        videos = output.outputs if isinstance(output, Variants) else (output,)
        files, first = [], None
        for index, video in enumerate(videos):
            prefix = target.prefix if index == 0 else f"{target.prefix}-{index}"
            stored = await store_video(
                target.storage, video, target.asset_id, target.work_dir, prefix
            )
            first = first or stored
            files.append(StoredFile(stored.video, stored.url))
        assert first is not None  # a provider returns at least one video
        poster = None
        if first.poster is not None and first.poster_url is not None:
            poster = StoredFile(first.poster, first.poster_url)
        extra: dict[str, Any] = {"media": first.info.to_json()} if first.info else {}
        if isinstance(output, Variants) and output.filtered:
            made = output.filtered + len(videos)
            reasons = "; ".join(output.reasons) or "no reason given"
            warning = f"{output.filtered} of {made} videos were filtered: {reasons}"
            extra["warnings"] = [warning]
        return StoredOutput(files=tuple(files), poster=poster, extra=extra)


NODE_TYPE = NodeType("video_gen", VideoGenNodeData, runnable=True, generation=VideoGeneration())
