"""What a generated video really is: size, frame rate, duration and frames, from its headers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from flowboard.media.info import MediaInfo
from flowboard.media.poster import MediaError, probe_video


def media_info(path: Path) -> MediaInfo:
    """Probe the video at `path` from its container headers; decode only if they lack a count."""
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise MediaError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            rate = Fraction(stream.average_rate or stream.guessed_rate or 0)
            frames = int(stream.frames or 0)
            width, height = stream.codec_context.width, stream.codec_context.height
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration is not None and stream.time_base is not None
                else 0.0
            )
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{path.name} is not a readable video: {exc}") from exc
    if frames <= 0 or not width or not rate:  # headers silent (some WebM): count frames
        info = probe_video(path)
        frames, width, height = info.frames, info.width, info.height
        duration = info.duration_seconds
        rate = Fraction(frames / duration).limit_denominator(1001) if duration else Fraction(0)
    if duration <= 0 and rate:
        duration = float(frames / rate)
    return MediaInfo(
        width=width,
        height=height,
        fps=round(float(rate), 3),
        duration_seconds=round(duration, 3),
        frames=frames,
    )
