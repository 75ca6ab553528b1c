"""Tests for the media toolkit: local renderer, probing, posters and content sniffing."""

from __future__ import annotations

import io
import itertools
import struct
import threading
import zlib
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from flowboard.media.poster import MediaError, VideoInfo, extract_poster, probe_video
from flowboard.media.render import (
    RenderCancelled,
    RenderResult,
    RenderSpec,
    frame_size,
    render_video,
)
from flowboard.media.sniff import ImageInfo, UnsupportedMedia, sniff_image, sniff_video

Rendered = tuple[Path, RenderResult, VideoInfo]
PROMPT = "A lighthouse at dusk, waves crashing over the rocks while gulls circle overhead"


def _picture(size: tuple[int, int] = (640, 480), mode: str = "RGB") -> Image.Image:
    """Return a colourful, never-black test picture with detail to pan across."""
    image = Image.linear_gradient("L").resize(size)
    picture = Image.merge("RGB", (image, Image.new("L", size, 90), image.rotate(180)))
    draw = ImageDraw.Draw(picture)
    for x in range(0, size[0], 40):
        draw.rectangle((x, 0, x + 15, size[1]), fill=(230, 200, 60))
    return picture.convert(mode)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    """Return image saved in fmt."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _frames(video: Path) -> list[Image.Image]:
    """Decode every frame of video as an RGB image."""
    with av.open(str(video)) as container:
        return [
            frame.to_image()  # type: ignore[no-untyped-call]  # PyAV stub lacks the annotation
            for frame in container.decode(container.streams.video[0])
        ]


def _difference(first: Image.Image, second: Image.Image) -> float:
    """Return the mean absolute per-channel difference of two images (0..255)."""
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


def _render(directory: Path, name: str, spec: RenderSpec) -> Rendered:
    """Render spec into directory/name and probe the result."""
    out = directory / name
    result = render_video(spec, out)
    return out, result, probe_video(out)


@pytest.fixture(scope="module")
def title_video(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Render a 320x180, 2 s, 12 fps title card once for the module."""
    spec = RenderSpec(width=320, height=180, fps=12, duration_seconds=2.0, prompt=PROMPT)
    return _render(tmp_path_factory.mktemp("title"), "title.mp4", spec)


@pytest.fixture(scope="module")
def image_video(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """Render a 320x180, 2 s, 12 fps Ken Burns over a 4:3 JPEG once for the module."""
    spec = RenderSpec(320, 180, 12, 2.0, PROMPT, image=_encoded(_picture(), "JPEG"))
    return _render(tmp_path_factory.mktemp("image"), "image.mp4", spec)


@pytest.mark.parametrize(
    ("aspect", "resolution", "expected"),
    [
        ("16:9", "720p", (1280, 720)),
        ("9:16", "720p", (720, 1280)),
        ("1:1", "720p", (720, 720)),
        ("16:9", "480p", (854, 480)),
        ("9:16", "480p", (480, 854)),
        ("1:1", "480p", (480, 480)),
        ("16:9", "1080p", (1920, 1080)),
        ("9:16", "1080p", (1080, 1920)),
        ("4:3", "720p", (960, 720)),
    ],
)
def test_frame_size_table(aspect: str, resolution: str, expected: tuple[int, int]) -> None:
    """Map aspect ratio and resolution to even frame sizes, short side = resolution."""
    width, height = frame_size(aspect, resolution)
    assert (width, height) == expected
    assert width % 2 == 0
    assert height % 2 == 0


@pytest.mark.parametrize(
    ("aspect", "resolution"),
    [
        ("16:9", "4k"),
        ("16:9", "720"),
        ("16:9", ""),
        ("wide", "720p"),
        ("16:0", "720p"),
        ("16:9:1", "720p"),
        ("-16:9", "720p"),
        ("1:9", "720p"),
    ],
)
def test_frame_size_rejects_unknown(aspect: str, resolution: str) -> None:
    """Refuse resolutions and aspect ratios outside the table."""
    with pytest.raises(ValueError, match=r"unsupported|must look like"):
        frame_size(aspect, resolution)


def test_title_card_render_matches_probe(
    title_video: Rendered,
) -> None:
    """Write a real H.264 MP4 with the requested frames, duration and size."""
    _, result, info = title_video
    assert result == RenderResult(frames=24, width=320, height=180, duration_seconds=2.0)
    assert info.frames == 24
    assert info.duration_seconds == pytest.approx(2.0, rel=0.1)
    assert (info.width, info.height) == (320, 180)
    assert info.codec == "h264"


def test_image_render_matches_probe(image_video: Rendered) -> None:
    """Render an image-led video with the requested frames, duration and size."""
    _, result, info = image_video
    assert result.frames == info.frames == 24
    assert info.duration_seconds == pytest.approx(2.0, rel=0.1)
    assert (info.width, info.height, info.codec) == (320, 180, "h264")


def test_portrait_render(tmp_path: Path) -> None:
    """Render 9:16 frames, cover-cropping a landscape image."""
    spec = RenderSpec(180, 320, 8, 1.5, PROMPT, _encoded(_picture(), "PNG"))
    out, result, info = _render(tmp_path, "portrait.mp4", spec)
    assert (info.width, info.height) == (180, 320)
    assert info.frames == result.frames == 12
    assert info.duration_seconds == pytest.approx(1.5, rel=0.1)
    _assert_no_bars(_frames(out)[0])


def test_video_is_yuv420p_with_moov_first(title_video: Rendered) -> None:
    """Encode yuv420p and put the index before the media data for streaming."""
    path = title_video[0]
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    data = path.read_bytes()
    assert data[4:8] == b"ftyp"
    assert -1 < data.find(b"moov") < data.find(b"mdat")


@pytest.mark.parametrize("fixture", ["title_video", "image_video"])
def test_frames_change_smoothly(fixture: str, request: pytest.FixtureRequest) -> None:
    """Move the picture over time, a little each frame."""
    path = request.getfixturevalue(fixture)[0]
    frames = _frames(path)
    overall = _difference(frames[0], frames[-1])
    assert overall > 3
    steps = [_difference(a, b) for a, b in itertools.pairwise(frames)]
    assert max(steps) < overall


def _assert_no_bars(frame: Image.Image) -> None:
    """Fail if any edge of frame is a black bar."""
    width, height = frame.size
    edges = [(0, 0, width, 3), (0, height - 3, width, height), (0, 0, 3, height)]
    edges.append((width - 3, 0, width, height))
    for box in edges:
        assert max(ImageStat.Stat(frame.crop(box)).mean) > 60, box


def test_image_is_cover_cropped(image_video: Rendered) -> None:
    """Fill the whole frame with the image: no letterbox bars at any time."""
    frames = _frames(image_video[0])
    for frame in (frames[0], frames[len(frames) // 2], frames[-1]):
        _assert_no_bars(frame)


def test_progress_increases_and_ends_at_one(tmp_path: Path) -> None:
    """Report a bounded number of increasing fractions, finishing at 1.0."""
    calls: list[float] = []
    spec = RenderSpec(160, 90, 12, 4.0, "progress")
    result = render_video(spec, tmp_path / "p.mp4", calls.append)
    assert result.frames == 48
    assert 5 <= len(calls) <= 21
    assert all(0 < value <= 1 for value in calls)
    assert all(a < b for a, b in itertools.pairwise(calls))
    assert calls[-1] == 1.0


def test_cancel_removes_file_and_raises(tmp_path: Path) -> None:
    """Stop at the next frame once cancelled and leave nothing on disk."""
    cancel = threading.Event()
    calls: list[float] = []

    def progress(fraction: float) -> None:
        calls.append(fraction)
        cancel.set()

    spec = RenderSpec(160, 90, 12, 4.0, "cancel me")
    with pytest.raises(RenderCancelled):
        render_video(spec, tmp_path / "c.mp4", progress, cancel)
    assert len(calls) == 1
    assert list(tmp_path.iterdir()) == []


def test_cancel_before_start(tmp_path: Path) -> None:
    """Refuse to start an already-cancelled render, leaving nothing on disk."""
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RenderCancelled):
        render_video(RenderSpec(160, 90, 12, 1.0, "x"), tmp_path / "c.mp4", cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    """Remove the temporary file when anything fails mid-render."""

    def explode(fraction: float) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        render_video(RenderSpec(160, 90, 12, 2.0, "x"), tmp_path / "f.mp4", explode)
    assert list(tmp_path.iterdir()) == []


def test_rerender_replaces_existing_file(tmp_path: Path) -> None:
    """Replace a file already at the target name."""
    out = tmp_path / "v.mp4"
    out.write_bytes(b"old")
    render_video(RenderSpec(160, 90, 12, 1.0, "x"), out)
    assert probe_video(out).frames == 12
    assert [path.name for path in tmp_path.iterdir()] == ["v.mp4"]


def test_render_awkward_inputs(tmp_path: Path) -> None:
    """Render a translucent RGBA image and a huge prompt with an unbreakable word."""
    transparent = _picture((300, 300), "RGBA")
    transparent.putalpha(Image.linear_gradient("L").resize((300, 300)))
    spec = RenderSpec(160, 90, 12, 1.0, "x", _encoded(transparent, "PNG"))
    assert render_video(spec, tmp_path / "a.mp4").frames == 12
    prompt = "word " * 300 + "x" * 200
    spec = RenderSpec(160, 90, 12, 1.0, prompt)
    assert probe_video(tmp_path / "a.mp4").frames == 12
    assert render_video(spec, tmp_path / "b.mp4").frames == 12


@pytest.mark.parametrize(
    "spec",
    [
        RenderSpec(321, 180, 12, 1.0, "odd width"),
        RenderSpec(0, 180, 12, 1.0, "no width"),
        RenderSpec(320, 180, 0, 1.0, "no fps"),
        RenderSpec(320, 180, 12, 0.0, "no duration"),
        RenderSpec(320, 180, 12, 1.0, "bad image", image=b"not an image"),
    ],
)
def test_render_rejects_bad_spec(spec: RenderSpec, tmp_path: Path) -> None:
    """Raise ValueError for specs that cannot be rendered, writing nothing."""
    with pytest.raises(ValueError, match=r"even|fps|duration|image"):
        render_video(spec, tmp_path / "bad.mp4")
    assert list(tmp_path.iterdir()) == []


def test_poster_is_a_jpeg_of_the_frame(title_video: Rendered, tmp_path: Path) -> None:
    """Save a JPEG that Pillow opens at the video's size."""
    out = tmp_path / "poster.jpg"
    assert extract_poster(title_video[0], out, at_seconds=1.0) == (320, 180)
    with Image.open(out) as poster:
        assert poster.format == "JPEG"
        assert poster.size == (320, 180)
        frame = _frames(title_video[0])[12]
        assert _difference(poster.convert("RGB"), frame) < 4


def test_poster_scales_down_and_clamps_time(image_video: Rendered, tmp_path: Path) -> None:
    """Shrink to max_width keeping the aspect; past the end gives the last frame."""
    first, last = tmp_path / "first.jpg", tmp_path / "last.jpg"
    assert extract_poster(image_video[0], first, 0.0, max_width=160) == (160, 90)
    assert extract_poster(image_video[0], last, 99.0, max_width=160) == (160, 90)
    with Image.open(first) as start, Image.open(last) as end:
        assert start.size == end.size == (160, 90)
        assert _difference(start.convert("RGB"), end.convert("RGB")) > 3
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first.jpg", "last.jpg"]


def test_probe_counts_decoded_frames_of_truncated_video(
    title_video: Rendered, tmp_path: Path
) -> None:
    """Count frames that decode, not what the header claims."""
    data = title_video[0].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    info = probe_video(cut)
    assert info.duration_seconds == pytest.approx(2.0)  # the header still claims it all
    assert 0 < info.frames < 24


@pytest.mark.parametrize(
    "content", [b"", b"hello, I am text, not a video\n" * 20, _encoded(_picture(), "PNG")]
)
def test_unreadable_video_raises_media_error(content: bytes, tmp_path: Path) -> None:
    """Map anything that is not a video to MediaError."""
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError):
        probe_video(path)
    with pytest.raises(MediaError):
        extract_poster(path, tmp_path / "p.jpg")
    assert not (tmp_path / "p.jpg").exists()


def test_missing_video_raises_media_error(tmp_path: Path) -> None:
    """Map a missing file to MediaError."""
    with pytest.raises(MediaError, match=r"missing\.mp4"):
        probe_video(tmp_path / "missing.mp4")


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [
        ("PNG", "image/png", "png"),
        ("JPEG", "image/jpeg", "jpg"),
        ("WEBP", "image/webp", "webp"),
        ("GIF", "image/gif", "gif"),
    ],
)
def test_sniff_accepts_supported_images(fmt: str, content_type: str, extension: str) -> None:
    """Identify each supported format made by Pillow, with its size."""
    info = sniff_image(_encoded(_picture((123, 45)), fmt))
    assert info == ImageInfo(content_type, extension, 123, 45)


def test_sniff_trusts_content_not_name(tmp_path: Path) -> None:
    """Report a JPEG saved under a .png name as a JPEG."""
    path = tmp_path / "photo.png"
    path.write_bytes(_encoded(_picture((64, 48)), "JPEG"))
    info = sniff_image(path.read_bytes())
    assert (info.content_type, info.extension) == ("image/jpeg", "jpg")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    """Return a PNG chunk with a correct CRC."""
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _bomb_png(width: int, height: int) -> bytes:
    """Return a tiny PNG whose header claims width x height pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _corrupt(data: bytes) -> bytes:
    """Flip one byte in the middle of data."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"just some text, certainly not a picture" * 10, "not an image"),
        (_encoded(_picture(), "PNG")[:2000], "truncated PNG"),
        (_encoded(_picture(), "JPEG")[:1500], "truncated JPG"),
        (_encoded(_picture(), "WEBP")[:500], "truncated WEBP"),
        (_corrupt(_encoded(_picture(), "PNG")), "corrupt"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "corrupt"),
        (_encoded(_picture(), "BMP"), "not an image"),
        (_encoded(_picture(), "TIFF"), "not an image"),
        (_bomb_png(100_000, 100_000), "pixel limit"),
    ],
)
def test_sniff_rejects_bad_images(data: bytes, message: str) -> None:
    """Refuse non-images, unsupported formats, damaged files and decompression bombs."""
    with pytest.raises(UnsupportedMedia, match=message):
        sniff_image(data)


def test_sniff_honours_max_pixels() -> None:
    """Refuse images over max_pixels and accept those exactly at it."""
    data = _encoded(_picture((100, 50)), "PNG")
    assert sniff_image(data, max_pixels=5000).width == 100
    with pytest.raises(UnsupportedMedia, match="5000 pixels"):
        sniff_image(data, max_pixels=4999)
    assert issubclass(UnsupportedMedia, ValueError)


def test_sniff_video_recognises_rendered_mp4(
    title_video: Rendered,
) -> None:
    """Identify the renderer's own output as MP4."""
    assert sniff_video(title_video[0].read_bytes()[:64]) == "video/mp4"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "video/mp4"),
        (b"\x00\x00\x00\x1cftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "video/quicktime"),
        (b"\x00\x00\x00\x08wide\x00\x10\x00\x00mdat", "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87", "video/webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", None),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", None),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", None),
        (b"\x00\x00\x00\x0cftyp", None),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
        (b"GIF89a", None),
        (b"", None),
    ],
)
def test_sniff_video_magic(head: bytes, expected: str | None) -> None:
    """Map container magic bytes to a video MIME type, or None."""
    assert sniff_video(head) == expected
