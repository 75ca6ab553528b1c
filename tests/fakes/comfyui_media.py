"""Files for the fake ComfyUI: uploads, output names, small real MP4s and PNGs.

Everything here blocks; callers run it with asyncio.to_thread.
"""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

MAX_SIDE = 256


def scaled_size(width: int, height: int, limit: int = MAX_SIDE) -> tuple[int, int]:
    """Scale (width, height) to fit `limit`, keeping aspect; sides even, as yuv420p needs."""
    scale = min(1.0, limit / max(width, height, 1))

    def even(side: int) -> int:
        return max(2, round(side * scale / 2) * 2)

    return even(width), even(height)


def next_output_path(output_dir: Path, prefix: str, ext: str) -> tuple[Path, str]:
    """Return the next free `<prefix>_NNNNN_.<ext>` path and its subfolder, as ComfyUI names them.

    Raises ValueError when the prefix would leave the output folder.
    """
    folder = (output_dir / prefix).parent.resolve()
    root = output_dir.resolve()
    if folder != root and root not in folder.parents:
        raise ValueError("Saving image outside the output folder is not allowed.")
    name = Path(prefix).name or "ComfyUI"
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(name)}_(\d{{5}})_")
    used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    counter = max(used, default=0) + 1
    subfolder = folder.relative_to(root).as_posix()
    return folder / f"{name}_{counter:05}_.{ext}", "" if subfolder == "." else subfolder


def image_size(path: Path) -> tuple[int, int]:
    """Return an image file's (width, height)."""
    with Image.open(path) as image:
        return image.size


def _base_frame(width: int, height: int, source: Path | None) -> np.ndarray:
    if source is not None:
        with Image.open(source) as image:
            return np.asarray(image.convert("RGB").resize((width, height)), dtype=np.uint8)
    xs = np.linspace(0, 255, width, dtype=np.uint8)
    ys = np.linspace(0, 255, height, dtype=np.uint8)
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    frame[:, :, 0] = xs[np.newaxis, :]
    frame[:, :, 1] = ys[:, np.newaxis]
    frame[:, :, 2] = 128
    return frame


def write_mp4(
    path: Path, width: int, height: int, frames: int, fps: float, source: Path | None = None
) -> None:
    """Encode `frames` frames of a drifting picture at `fps` as H.264 (sides ≤ MAX_SIDE)."""
    w, h = scaled_size(width, height)
    base = _base_frame(w, h, source)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        for index in range(max(frames, 1)):
            picture = np.roll(base, shift=index * 4, axis=1)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_png(path: Path, width: int, height: int, source: Path | None = None) -> None:
    """Write one PNG (sides ≤ MAX_SIDE)."""
    w, h = scaled_size(width, height)
    Image.fromarray(_base_frame(w, h, source)).save(path, format="PNG")


def _inside(root: Path, path: Path) -> bool:
    root, path = root.resolve(), path.resolve()
    return path == root or root in path.parents


def store_upload(
    folder: Path, subfolder: str, filename: str, data: bytes, overwrite: bool
) -> tuple[str, bool] | None:
    """Save an upload as ComfyUI does; return (name, duplicate) or None when the path escapes.

    Without overwrite, an existing name with the same bytes is reused (duplicate) and one with
    other bytes moves on to "x (1).png", "x (2).png", … until a free or identical file.
    """
    target = folder / subfolder
    path = target / filename
    if not _inside(folder, target) or not _inside(folder, path):
        return None
    name = filename
    stem, ext = os.path.splitext(filename)
    attempt = 1
    while not overwrite and path.exists():
        if path.is_file() and path.read_bytes() == data:
            return name, True
        name = f"{stem} ({attempt}){ext}"
        path, attempt = target / name, attempt + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name, False
