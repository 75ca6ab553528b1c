"""Probe videos and extract poster frames from them."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import av
from av.container import InputContainer
from av.video.stream import VideoStream
from PIL import Image

_SEEK_TOLERANCE = 1e-3  # seconds; frame timestamps are rationals rounded to floats
_JPEG_QUALITY = 85


@dataclass(frozen=True)
class VideoInfo:
    """A video's duration, decoded frame count, frame size and codec name."""

    duration_seconds: float
    frames: int
    width: int
    height: int
    codec: str


class MediaError(Exception):
    """The file is not a readable video."""


def probe_video(path: Path) -> VideoInfo:
    """Describe the video at path, counting frames by decoding them all."""
    with _media_errors(path), av.open(str(path), mode="r") as container:
        stream = _video_stream(container, path)
        frames, width, height = 0, 0, 0
        for frame in container.decode(stream):
            if not frames:
                width, height = frame.width, frame.height
            frames += 1
        if not frames:
            raise MediaError(f"{path.name} has no decodable video frames")
        duration = _duration(container, stream, frames)
        return VideoInfo(duration, frames, width, height, stream.codec_context.name)


def extract_poster(
    video: Path, out: Path, at_seconds: float = 0.0, max_width: int = 1280
) -> tuple[int, int]:
    """Save the frame shown at at_seconds as a JPEG at most max_width wide; return its size."""
    if max_width < 1:
        raise ValueError(f"max_width must be positive, got {max_width}")
    image = _frame_at(video, max(at_seconds, 0.0))
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    try:
        image.save(tmp, format="JPEG", quality=_JPEG_QUALITY, optimize=True)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return image.width, image.height


@contextmanager
def _media_errors(path: Path) -> Iterator[None]:
    """Map PyAV and OS errors from reading path into MediaError."""
    try:
        yield
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot read video {path.name}: {exc}") from exc


def _video_stream(container: InputContainer, path: Path) -> VideoStream:
    """Return the first video stream, decoding with threads."""
    if not container.streams.video:
        raise MediaError(f"{path.name} has no video stream")
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        # FFmpeg reads a lone PNG or JPEG as a one-frame "video"; that is no video to us.
        raise MediaError(f"{path.name} is a still image ({container.format.name}), not a video")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _duration(container: InputContainer, stream: VideoStream, frames: int) -> float:
    """Return the stream's duration, else the container's, else frames / rate."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    rate = stream.average_rate
    return frames / float(rate) if rate else 0.0


def _frame_at(video: Path, at_seconds: float) -> Image.Image:
    """Decode the first frame at or after at_seconds (the last frame if past the end)."""
    with _media_errors(video), av.open(str(video), mode="r") as container:
        stream = _video_stream(container, video)
        if at_seconds > 0 and stream.time_base is not None:
            # Lands on the keyframe at or before the target; decode forward from there.
            container.seek(int(at_seconds / stream.time_base), stream=stream)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is None or frame.time >= at_seconds - _SEEK_TOLERANCE:
                break
        if chosen is None:
            raise MediaError(f"{video.name} has no decodable video frames")
        image: Image.Image = chosen.to_image()  # type: ignore[no-untyped-call]  # PyAV stub
        return image
