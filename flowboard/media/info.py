"""What a stored video is, as probed."""

from __future__ import annotations

from flowboard.schema import ApiModel


class MediaInfo(ApiModel):
    """A stored video as probed, never as requested (a workflow may make its own size)."""

    width: int
    height: int
    fps: float
    duration_seconds: float
    frames: int
