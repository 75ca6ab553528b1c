"""`video_gen`: generate a video from a prompt and an optional first frame."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flowboard.ids import Id
from flowboard.nodes.base import NodeType
from flowboard.schema import ApiModel

AspectRatio = Literal["16:9", "9:16", "1:1"]
Resolution = Literal["480p", "720p", "1080p"]
ProviderName = Literal["local", "veo", "comfyui"]


class VideoGenNodeData(ApiModel):
    prompt: str = Field(default="", max_length=4_000)
    negative_prompt: str | None = Field(default=None, max_length=4_000)
    provider: ProviderName | None = None
    model: str | None = Field(default=None, max_length=200)
    duration_seconds: int = Field(default=4, ge=1, le=60)
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = "720p"
    fps: int | None = Field(default=None, ge=1, le=60)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    person_generation: str | None = Field(default=None, max_length=50)
    generate_audio: bool | None = None
    enhance_prompt: bool | None = None
    last_frame_asset_id: Id | None = None
    workflow: str | None = Field(default=None, max_length=100)


NODE_TYPE = NodeType("video_gen", VideoGenNodeData, runnable=True)
