"""Render the offline "local" provider's videos: Ken Burns over an image or a title card."""

from __future__ import annotations

import colorsys
import functools
import io
import math
import os
import secrets
import threading
import zlib
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, TypeAlias

import av
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

Painter: TypeAlias = Callable[[float], Image.Image]
Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont

_SHORT_SIDES = {"480p": 480, "720p": 720, "1080p": 1080}
_MAX_ASPECT = 4.0
_PROGRESS_CALLS = 20
_ZOOM_START, _ZOOM_END = 1.04, 1.2  # Ken Burns zoom, relative to a cover-cropped frame
_PAN = 0.9  # share of the free margin the pan travels through
_DRIFT = 0.14  # title-card background drift, as a share of the frame
_MAX_PROMPT_CHARS = 280
_FONT_FILE = "DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class RenderSpec:
    """What to render: frame size, rate, length, the prompt and an optional first frame."""

    width: int
    height: int
    fps: int
    duration_seconds: float
    prompt: str
    image: bytes | None = None  # first frame, any Pillow-readable format
    seed: int | None = None  # another seed, another motion and palette (None: the prompt's)


@dataclass(frozen=True)
class RenderResult:
    """What was written: frame count, size and exact duration (frames / fps)."""

    frames: int
    width: int
    height: int
    duration_seconds: float


class RenderCancelled(Exception):
    """The render was cancelled; no output file was left behind."""


def frame_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """Return (width, height) for an aspect ratio like "16:9" and a resolution like "720p"."""
    short = _SHORT_SIDES.get(resolution)
    if short is None:
        choices = ", ".join(_SHORT_SIDES)
        raise ValueError(f"unsupported resolution {resolution!r}; use one of {choices}")
    across, down = _parse_aspect(aspect_ratio)
    long = _even(short * max(across, down) / min(across, down))
    return (long, short) if across >= down else (short, long)


def render_video(
    spec: RenderSpec,
    out: Path,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Write spec as an H.264 MP4 at out, atomically; raise RenderCancelled if cancelled."""
    _validate(spec)
    frames = max(1, round(spec.duration_seconds * spec.fps))
    painter = _painter(spec)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    try:
        _encode(tmp, spec, frames, painter, progress, cancel)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(1.0)
    return RenderResult(frames, spec.width, spec.height, frames / spec.fps)


def _parse_aspect(aspect_ratio: str) -> tuple[int, int]:
    """Parse "W:H" into two positive integers with a sane ratio."""
    parts = aspect_ratio.split(":")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(f"aspect ratio must look like '16:9', got {aspect_ratio!r}")
    across, down = int(parts[0]), int(parts[1])
    if min(across, down) < 1 or max(across, down) / min(across, down) > _MAX_ASPECT:
        raise ValueError(f"unsupported aspect ratio {aspect_ratio!r}")
    return across, down


def _even(value: float) -> int:
    """Round to the nearest even integer (yuv420p needs even sides)."""
    return 2 * round(value / 2)


def _validate(spec: RenderSpec) -> None:
    """Refuse specs the encoder cannot honour."""
    if spec.width < 2 or spec.height < 2 or spec.width % 2 or spec.height % 2:
        raise ValueError(f"frame size must be even and positive, got {spec.width}x{spec.height}")
    if not 1 <= spec.fps <= 120:
        raise ValueError(f"fps must be within 1..120, got {spec.fps}")
    if not 0 < spec.duration_seconds <= 600:
        raise ValueError(f"duration must be within (0, 600] s, got {spec.duration_seconds}")


@functools.cache
def codec_name() -> Literal["libx264", "h264"]:
    """Return the H.264 encoder to use: libx264 when PyAV's FFmpeg has it."""
    try:
        av.Codec("libx264", "w")
    except (av.FFmpegError, ValueError):  # PyAV raises UnknownCodecError, a ValueError
        return "h264"
    return "libx264"


def _codec_options(codec: str) -> dict[str, str]:
    """Return encoder options: fast, decent quality, web friendly."""
    if codec == "libx264":
        # superfast: ~1.5x the speed of veryfast; files grow, but local previews are small.
        return {"preset": "superfast", "crf": "23"}
    return {}


def _encode(
    tmp: Path,
    spec: RenderSpec,
    frames: int,
    painter: Painter,
    progress: Callable[[float], None] | None,
    cancel: threading.Event | None,
) -> None:
    """Encode every frame painter draws into an MP4 at tmp."""
    step = max(1, math.ceil(frames / _PROGRESS_CALLS))
    time_base = Fraction(1, spec.fps)
    codec = codec_name()
    with av.open(
        str(tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"}
    ) as container:
        stream = container.add_stream(codec, rate=spec.fps, options=_codec_options(codec))
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        with closing(_prefetched(painter, frames)) as images:
            for index, image in enumerate(images):
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled(f"render of {tmp.name} cancelled at frame {index}")
                frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]  # PyAV stub
                frame.pts, frame.time_base = index, time_base
                container.mux(stream.encode(frame))
                _report(progress, index + 1, frames, step)
        container.mux(stream.encode(None))


def _report(progress: Callable[[float], None] | None, done: int, frames: int, step: int) -> None:
    """Report progress every step frames; the final 1.0 comes once the file is in place."""
    if progress is not None and done % step == 0 and done < frames:
        progress(done / frames)


def _prefetched(painter: Painter, frames: int) -> Generator[Image.Image, None, None]:
    """Yield every frame, painting the next one in a helper thread while the caller encodes."""
    times = [index / max(frames - 1, 1) for index in range(frames)]
    with ThreadPoolExecutor(1, thread_name_prefix="flowboard-render-paint") as pool:
        pending = pool.submit(painter, times[0])
        for t in times[1:]:
            current = pending.result()
            pending = pool.submit(painter, t)
            yield current
        yield pending.result()


def _painter(spec: RenderSpec) -> Painter:
    """Return the frame painter for spec (t runs from 0 to 1)."""
    seed = zlib.crc32(spec.prompt.encode())
    if spec.seed is not None:
        seed = zlib.crc32(spec.seed.to_bytes(8, "little"), seed)
    if spec.image is not None:
        return _ken_burns(_decode_image(spec.image, spec.width, spec.height), spec, seed)
    return _title_card(spec, seed)


def _ease(t: float) -> float:
    """Smoothstep, so motion starts and ends gently."""
    return t * t * (3 - 2 * t)


def _decode_image(data: bytes, width: int, height: int) -> Image.Image:
    """Decode data into an RGB image cover-cropped to the frame aspect, with zoom headroom."""
    size = (round(width * _ZOOM_END), round(height * _ZOOM_END))
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("RGB", size)  # JPEG: decode at reduced scale when large
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image is not a readable picture: {exc}") from exc
    if image.mode not in ("RGB", "L"):
        backdrop = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(backdrop, image.convert("RGBA"))
    return ImageOps.fit(image.convert("RGB"), size, Image.Resampling.LANCZOS)


def _ken_burns(source: Image.Image, spec: RenderSpec, seed: int) -> Painter:
    """Return a painter that slowly pans and zooms across source."""
    width, height = spec.width, spec.height
    src_w, src_h = source.size
    dir_x = 1.0 if seed & 1 else -1.0
    dir_y = 0.4 if seed & 2 else -0.4
    zoom_in = not seed & 4

    def paint(t: float) -> Image.Image:
        e = _ease(t)
        zoom = _ZOOM_START + (_ZOOM_END - _ZOOM_START) * (e if zoom_in else 1 - e)
        box_w, box_h = width * _ZOOM_END / zoom, height * _ZOOM_END / zoom
        travel = (2 * e - 1) * _PAN
        cx = src_w / 2 + dir_x * travel * (src_w - box_w) / 2
        cy = src_h / 2 + dir_y * travel * (src_h - box_h) / 2
        box = (cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)
        return source.resize((width, height), Image.Resampling.BILINEAR, box=box)

    return paint


def _title_card(spec: RenderSpec, seed: int) -> Painter:
    """Return a painter for the prompt's title card over a drifting gradient."""
    width, height = spec.width, spec.height
    margin_x, margin_y = round(width * _DRIFT), round(height * _DRIFT)
    background = _gradient(width + margin_x, height + margin_y, seed)
    layer, origin = _text_layer(spec.prompt, width, height)

    def paint(t: float) -> Image.Image:
        e = _ease(t)
        left, top = round(margin_x * e), round(margin_y * (1 - e))
        frame = background.crop((left, top, left + width, top + height))
        frame.paste(layer, origin, layer)
        return frame

    return paint


def _gradient(width: int, height: int, seed: int) -> Image.Image:
    """Return a diagonal two-colour gradient with a soft glow, coloured by seed."""
    hue = (seed % 360) / 360
    dark = _colour(hue, 0.75, 0.22)
    light = _colour((hue + 0.12) % 1.0, 0.6, 0.62)
    vertical = Image.linear_gradient("L").resize((width, height))
    horizontal = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90)
    diagonal = Image.blend(vertical, horizontal.resize((width, height)), 0.5)
    base = Image.composite(
        Image.new("RGB", (width, height), dark), Image.new("RGB", (width, height), light), diagonal
    )
    glow = ImageOps.invert(Image.radial_gradient("L")).resize((width, height))
    tint = Image.new("RGB", (width, height), _colour((hue + 0.5) % 1.0, 0.35, 0.8))
    return Image.composite(tint, base, glow.point(lambda value: value * 45 // 255))


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    """Return an 8-bit RGB triple for an HSV colour."""
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _text_layer(prompt: str, width: int, height: int) -> tuple[Image.Image, tuple[int, int]]:
    """Return the prompt drawn as white text with a soft shadow, and where to paste it."""
    font, size, lines = _layout(prompt, width, height)
    line_height = round(size * 1.3)
    pad = max(4, size // 4)
    box_w = max(round(font.getlength(line)) for line in lines) + 2 * pad
    box_h = line_height * len(lines) + 2 * pad
    text = Image.new("RGBA", (box_w, box_h), (255, 255, 255, 0))
    draw = ImageDraw.Draw(text)
    for row, line in enumerate(lines):
        x = (box_w - font.getlength(line)) / 2
        draw.text((x, pad + row * line_height), line, font=font, fill=(255, 255, 255, 255))
    shadow_alpha = text.getchannel("A").filter(ImageFilter.GaussianBlur(max(2, size // 10)))
    shadow = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    shadow.putalpha(shadow_alpha.point(lambda value: value * 3 // 4))
    layer = Image.alpha_composite(shadow, text)
    return layer, ((width - box_w) // 2, (height - box_h) // 2)


def _layout(prompt: str, width: int, height: int) -> tuple[Font, int, list[str]]:
    """Pick the largest font size at which the prompt fits the frame, and wrap it."""
    text = " ".join(prompt.split())[:_MAX_PROMPT_CHARS] or "Untitled"
    short = min(width, height)
    max_width = width * 0.84
    for size in (max(8, short // divisor) for divisor in (9, 12, 16, 22)):
        font = _font(size)
        lines = _wrap(text.split(), font, max_width)
        if len(lines) * size * 1.3 <= height * 0.8:
            return font, size, lines
    # Even the smallest size overflows: keep what fits and mark the cut.
    max_lines = max(1, int(height * 0.8 // (size * 1.3)))
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], _ellipsize(lines[max_lines - 1], font, max_width)]
    return font, size, lines


@functools.cache
def _font(size: int) -> Font:
    """Return a bold sans font at size, falling back to Pillow's bundled font."""
    try:
        return ImageFont.truetype(_FONT_FILE, size)
    except OSError:
        return ImageFont.load_default(size)


def _wrap(words: list[str], font: Font, max_width: float) -> list[str]:
    """Greedily wrap words into lines no wider than max_width."""
    lines: list[str] = []
    line = ""
    for word in words:
        for piece in _split_word(word, font, max_width):
            candidate = f"{line} {piece}" if line else piece
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                candidate = piece
            line = candidate
    return [*lines, line] if line else lines


def _split_word(word: str, font: Font, max_width: float) -> list[str]:
    """Split a word too wide for one line into pieces that fit."""
    pieces: list[str] = []
    while len(word) > 1 and font.getlength(word) > max_width:
        cut = len(word) - 1
        while cut > 1 and font.getlength(word[:cut]) > max_width:
            cut -= 1
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word]


def _ellipsize(line: str, font: Font, max_width: float) -> str:
    """Shorten line until it fits with a trailing ellipsis."""
    while line and font.getlength(f"{line}…") > max_width:
        line = line[:-1]
    return f"{line.rstrip()}…"
