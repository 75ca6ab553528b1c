"""Make and inspect small real H.264 MP4 clips for the fake Veo service."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from fractions import Fraction

import av

FPS = 8
# Sizes are small multiples of 2 (H.264 with yuv420p needs even sides).
FRAME_SIZES: dict[str, tuple[int, int]] = {"16:9": (320, 180), "9:16": (180, 320)}


@dataclass(frozen=True)
class ClipInfo:
    """What a decoded clip looks like."""

    width: int
    height: int
    frames: int
    duration: float
    """Seconds, from the container (or frames / rate when it has none)."""
    codec: str


def make_mp4(aspect_ratio: str, seconds: int, fps: int = FPS) -> bytes:
    """Encode a fading colour clip of `seconds` at the size for `aspect_ratio`."""
    width, height = FRAME_SIZES[aspect_ratio]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for index in range(seconds * fps):
            frame = av.VideoFrame(width, height, "yuv420p")
            shade = 16 + (index * 219) // max(1, seconds * fps - 1)
            # Fill whole planes (rows are padded), a uniform colour that fades per frame.
            for plane, value in zip(frame.planes, (shade, 255 - shade, 128), strict=True):
                plane.update(bytes((value,)) * plane.buffer_size)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def probe_mp4(data: bytes) -> ClipInfo:
    """Decode every frame of `data` and describe the clip."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        if container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = frames / float(stream.average_rate or FPS)
        return ClipInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=frames,
            duration=duration,
            codec=stream.codec_context.name,
        )


@dataclass
class ClipCache:
    """Encode each (aspect ratio, seconds) clip once, off the event loop."""

    clips: dict[tuple[str, int], bytes] = field(default_factory=dict)
    encodes: int = 0
    """How many clips were actually encoded (tests check the cache works)."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self, aspect_ratio: str, seconds: int) -> bytes:
        """Return the clip, encoding it in a worker thread the first time."""
        key = (aspect_ratio, seconds)
        async with self._lock:
            if key not in self.clips:
                self.clips[key] = await asyncio.to_thread(make_mp4, aspect_ratio, seconds)
                self.encodes += 1
            return self.clips[key]
