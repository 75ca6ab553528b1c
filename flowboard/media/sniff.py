"""Identify uploaded images and videos by their content, never by their names."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from PIL import GifImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

_Opener = Callable[[IO[bytes]], ImageFile.ImageFile]

# Pillow raises these for malformed data, depending on the format and where it breaks.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    Image.DecompressionBombError,
)
_ISO_NOT_VIDEO = {b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"M4A ", b"M4B ", b"M4P "}
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


@dataclass(frozen=True)
class ImageInfo:
    """An accepted image: MIME type, file extension (no dot) and pixel size."""

    content_type: str
    extension: str
    width: int
    height: int


@dataclass(frozen=True)
class _Kind:
    """A supported image format and the Pillow class that reads exactly it."""

    content_type: str
    extension: str
    opener: _Opener


_PNG = _Kind("image/png", "png", PngImagePlugin.PngImageFile)
_JPEG = _Kind("image/jpeg", "jpg", JpegImagePlugin.JpegImageFile)
_WEBP = _Kind("image/webp", "webp", WebPImagePlugin.WebPImageFile)
_GIF = _Kind("image/gif", "gif", GifImagePlugin.GifImageFile)


class UnsupportedMedia(ValueError):
    """The data is not an acceptable image or video."""


def sniff_image(data: bytes, max_pixels: int = 40_000_000) -> ImageInfo:
    """Identify a PNG, JPEG, WEBP or GIF by content; refuse anything else, broken or huge."""
    kind = _image_kind(data)
    width, height = _checked(kind, data, _header_only)
    if width * height > max_pixels:
        raise UnsupportedMedia(
            f"image is {width}x{height} = {width * height} pixels, "
            f"over the {max_pixels} pixel limit"
        )
    _checked(kind, data, _verify)
    _checked(kind, data, _load)
    return ImageInfo(kind.content_type, kind.extension, width, height)


def sniff_video(head: bytes) -> str | None:
    """Return the video MIME type that head's magic bytes announce, else None."""
    box = head[4:8]
    if box == b"ftyp":
        brand = head[8:12]
        if brand in _ISO_NOT_VIDEO or len(brand) < 4:
            return None
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if box in _QUICKTIME_ATOMS:
        return "video/quicktime"
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[4:64]:
        return "video/webm"
    return None


def _checked(
    kind: _Kind, data: bytes, step: Callable[[ImageFile.ImageFile], object]
) -> tuple[int, int]:
    """Open data as kind, run step on it and return its size; map failures to UnsupportedMedia."""
    # The format's own class, not Image.open: it cannot pick another format, and it skips
    # Pillow's global bomb limit so that max_pixels decides, before any pixel is decoded.
    try:
        with kind.opener(io.BytesIO(data)) as image:
            step(image)
            return image.size
    except _DECODE_ERRORS as exc:
        name = kind.extension.upper()
        raise UnsupportedMedia(f"corrupt or truncated {name} image: {exc}") from exc


def _header_only(image: ImageFile.ImageFile) -> None:
    """Read nothing beyond the header Pillow parsed on open."""


def _verify(image: ImageFile.ImageFile) -> None:
    """Check the file's structure (PNG: every chunk's CRC) without decoding."""
    image.verify()


def _load(image: ImageFile.ImageFile) -> None:
    """Decode the pixels, which catches truncation in every format."""
    image.load()


def _image_kind(data: bytes) -> _Kind:
    """Pick the image format from magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _PNG
    if data.startswith(b"\xff\xd8\xff"):
        return _JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return _GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _WEBP
    if not data:
        raise UnsupportedMedia("empty upload: no image data")
    raise UnsupportedMedia("not an image: only PNG, JPEG, WEBP and GIF are accepted")
