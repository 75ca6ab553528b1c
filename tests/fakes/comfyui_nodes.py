"""Node classes the fake ComfyUI knows: their inputs, outputs and what running them does."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes import comfyui_media as media

SEED_MAX = 0xFFFFFFFFFFFFFFFF
SIZE_MAX = 16384
SAMPLERS = ("euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "uni_pc", "ddim")
SCHEDULERS = ("simple", "normal", "karras", "exponential", "sgm_uniform", "beta")


@dataclass(frozen=True)
class Dirs:
    """The fake server's input, output and temp folders (the `type` of /view and uploads)."""

    input: Path
    output: Path
    temp: Path

    def by_type(self, kind: str) -> Path | None:
        """Return the folder for an upload or /view `type`, or None for an unknown type."""
        return {"input": self.input, "output": self.output, "temp": self.temp}.get(kind)


@dataclass(frozen=True)
class Frames:
    """Stand-in for an IMAGE or LATENT batch: the size and frame count it decodes to.

    source: the loaded image a video starts from (LoadImage → WanImageToVideo), if any.
    """

    width: int
    height: int
    count: int
    source: Path | None = None


@dataclass(frozen=True)
class Video:
    """Stand-in for a VIDEO object: frames plus a frame rate."""

    frames: Frames
    fps: float


@dataclass(frozen=True)
class NodeResult:
    """What one node produced: values per output slot and, for output nodes, its UI output."""

    outputs: tuple[Any, ...]
    ui: dict[str, Any] | None = None


@dataclass(frozen=True)
class InputSpec:
    """One input of a node class.

    kind: INT, FLOAT, STRING, BOOLEAN, COMBO, or a link type such as MODEL or IMAGE.
    minimum/maximum: range checked at validation for INT and FLOAT.
    options: allowed COMBO values; None means any string (model and image file names).
    """

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[str, ...] | None = None

    @property
    def is_widget(self) -> bool:
        """Say whether the input takes a literal value (a link is accepted too)."""
        return self.kind in {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

    def describe(self) -> list[Any]:
        """Return the input as /object_info lists it."""
        if self.kind == "COMBO":
            return [list(self.options or ())]
        extra = {k: v for k, v in (("min", self.minimum), ("max", self.maximum)) if v is not None}
        return [self.kind, extra] if extra else [self.kind]


NodeFn = Callable[[Mapping[str, Any], "NodeContext"], Awaitable[NodeResult]]
Checker = Callable[[Mapping[str, Any], Dirs], str | None]
ChangeKey = Callable[[Mapping[str, Any], Dirs], str]


@dataclass(frozen=True)
class NodeContext:
    """What a running node may use besides its inputs."""

    node_id: str
    dirs: Dirs


@dataclass(frozen=True)
class NodeClass:
    """A node class: its inputs, output types and behaviour.

    output_node: the node is a workflow output (SaveVideo, SaveImage).
    steps_input: the input whose value is the number of `progress` steps the node reports.
    check: extra validation (LoadImage's file check); returns a reason or None.
    change_key: extra cache key (LoadImage hashes the file, like ComfyUI's IS_CHANGED).
    """

    name: str
    required: Mapping[str, InputSpec]
    outputs: tuple[str, ...]
    run: NodeFn
    optional: Mapping[str, InputSpec] = field(default_factory=dict)
    output_node: bool = False
    steps_input: str | None = None
    check: Checker | None = None
    change_key: ChangeKey | None = None
    category: str = "fake"

    def spec(self, name: str) -> InputSpec | None:
        """Return the spec of a required or optional input."""
        return self.required.get(name) or self.optional.get(name)

    def describe(self) -> dict[str, Any]:
        """Return the class as /object_info lists it."""
        return {
            "input": {
                "required": {k: v.describe() for k, v in self.required.items()},
                "optional": {k: v.describe() for k, v in self.optional.items()},
            },
            "output": list(self.outputs),
            "output_is_list": [False] * len(self.outputs),
            "output_name": list(self.outputs),
            "name": self.name,
            "display_name": self.name,
            "description": "",
            "category": self.category,
            "output_node": self.output_node,
        }


def _int(lo: int, hi: int) -> InputSpec:
    return InputSpec("INT", lo, hi)


def _float(lo: float, hi: float) -> InputSpec:
    return InputSpec("FLOAT", lo, hi)


def _combo(*options: str) -> InputSpec:
    return InputSpec("COMBO", options=options)


FILE = InputSpec("COMBO")  # any file name: the fake has no model folders to list
STRING = InputSpec("STRING")


def video_frames(length: int) -> int:
    """Return the frames a video latent of `length` decodes to (4x temporal compression)."""
    return ((max(length, 1) - 1) // 4) * 4 + 1


def annotated_path(value: str, dirs: Dirs) -> Path:
    """Resolve a LoadImage value: `name`, `sub/name`, or `name [output]` style annotations."""
    base = dirs.input
    for kind in ("input", "output", "temp"):
        suffix = f" [{kind}]"
        if value.endswith(suffix):
            value, base = value[: -len(suffix)], dirs.by_type(kind) or base
    return base / value


def _tokens(*types: str) -> NodeFn:
    async def run(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
        label = next((str(v) for v in inputs.values() if isinstance(v, str)), ctx.node_id)
        return NodeResult(tuple(f"{kind}<{label}>" for kind in types))

    return run


async def _encode(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    return NodeResult((f"CONDITIONING<{inputs['text']}>",))


async def _empty_video_latent(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    size = (int(inputs["width"]), int(inputs["height"]))
    return NodeResult((Frames(*size, video_frames(int(inputs["length"]))),))


async def _empty_image_latent(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    size = (int(inputs["width"]), int(inputs["height"]))
    return NodeResult((Frames(*size, int(inputs["batch_size"])),))


async def _first_input(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    key = "latent_image" if "latent_image" in inputs else "samples"
    return NodeResult((inputs[key],))


async def _load_image(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    path = annotated_path(str(inputs["image"]), ctx.dirs)
    width, height = await asyncio.to_thread(media.image_size, path)
    return NodeResult((Frames(width, height, 1, path), f"MASK<{path.name}>"))


async def _wan_image_to_video(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    start = inputs.get("start_image")
    source = start.source if isinstance(start, Frames) else None
    latent = Frames(
        int(inputs["width"]), int(inputs["height"]), video_frames(int(inputs["length"])), source
    )
    return NodeResult((inputs["positive"], inputs["negative"], latent))


async def _create_video(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    images = inputs["images"]
    if not isinstance(images, Frames):
        raise TypeError("images is not an IMAGE batch")
    return NodeResult((Video(images, float(inputs["fps"])),))


async def _save_video(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    video = inputs["video"]
    if not isinstance(video, Video):
        raise TypeError("video is not a VIDEO")
    path, subfolder = media.next_output_path(ctx.dirs.output, str(inputs["filename_prefix"]), "mp4")
    frames = video.frames
    await asyncio.to_thread(
        media.write_mp4, path, frames.width, frames.height, frames.count, video.fps, frames.source
    )
    entry = {"filename": path.name, "subfolder": subfolder, "type": "output"}
    return NodeResult((), {"images": [entry], "animated": [True]})


async def _save_image(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeResult:
    images = inputs["images"]
    if not isinstance(images, Frames):
        raise TypeError("images is not an IMAGE batch")
    entries = []
    for _ in range(images.count):
        path, subfolder = media.next_output_path(
            ctx.dirs.output, str(inputs["filename_prefix"]), "png"
        )
        await asyncio.to_thread(media.write_png, path, images.width, images.height, images.source)
        entries.append({"filename": path.name, "subfolder": subfolder, "type": "output"})
    return NodeResult((), {"images": entries})


def _image_exists(inputs: Mapping[str, Any], dirs: Dirs) -> str | None:
    value = str(inputs.get("image", ""))
    if ".." in Path(value).parts or not annotated_path(value, dirs).is_file():
        return f"Invalid image file: {value}"
    return None


def _image_digest(inputs: Mapping[str, Any], dirs: Dirs) -> str:
    path = annotated_path(str(inputs.get("image", "")), dirs)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


_LATENT_SIZE = {"width": _int(16, SIZE_MAX), "height": _int(16, SIZE_MAX)}
_SAMPLING = {
    "seed": _int(0, SEED_MAX),
    "steps": _int(1, 10000),
    "cfg": _float(0.0, 100.0),
    "sampler_name": _combo(*SAMPLERS),
    "scheduler": _combo(*SCHEDULERS),
}


def _classes() -> list[NodeClass]:
    link = InputSpec
    return [
        NodeClass(
            "CheckpointLoaderSimple",
            {"ckpt_name": FILE},
            ("MODEL", "CLIP", "VAE"),
            _tokens("MODEL", "CLIP", "VAE"),
            category="loaders",
        ),
        NodeClass(
            "UNETLoader",
            {
                "unet_name": FILE,
                "weight_dtype": _combo("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"),
            },
            ("MODEL",),
            _tokens("MODEL"),
            category="advanced/loaders",
        ),
        NodeClass(
            "CLIPLoader",
            {
                "clip_name": FILE,
                "type": _combo("stable_diffusion", "sd3", "ltxv", "hunyuan_video", "wan"),
            },
            ("CLIP",),
            _tokens("CLIP"),
            optional={"device": _combo("default", "cpu")},
            category="advanced/loaders",
        ),
        NodeClass("VAELoader", {"vae_name": FILE}, ("VAE",), _tokens("VAE"), category="loaders"),
        NodeClass(
            "CLIPTextEncode",
            {"text": STRING, "clip": link("CLIP")},
            ("CONDITIONING",),
            _encode,
            category="conditioning",
        ),
        NodeClass(
            "EmptyLatentImage",
            {**_LATENT_SIZE, "batch_size": _int(1, 4096)},
            ("LATENT",),
            _empty_image_latent,
            category="latent",
        ),
        NodeClass(
            "EmptyHunyuanLatentVideo",
            {**_LATENT_SIZE, "length": _int(1, SIZE_MAX), "batch_size": _int(1, 4096)},
            ("LATENT",),
            _empty_video_latent,
            category="latent/video",
        ),
        NodeClass(
            "LoadImage",
            {"image": FILE},
            ("IMAGE", "MASK"),
            _load_image,
            check=_image_exists,
            change_key=_image_digest,
            category="image",
        ),
        NodeClass(
            "WanImageToVideo",
            {
                "positive": link("CONDITIONING"),
                "negative": link("CONDITIONING"),
                "vae": link("VAE"),
                **_LATENT_SIZE,
                "length": _int(1, SIZE_MAX),
                "batch_size": _int(1, 4096),
            },
            ("CONDITIONING", "CONDITIONING", "LATENT"),
            _wan_image_to_video,
            optional={
                "start_image": link("IMAGE"),
                "clip_vision_output": link("CLIP_VISION_OUTPUT"),
            },
            category="conditioning/video_models",
        ),
        NodeClass(
            "KSampler",
            {
                "model": link("MODEL"),
                **_SAMPLING,
                "positive": link("CONDITIONING"),
                "negative": link("CONDITIONING"),
                "latent_image": link("LATENT"),
                "denoise": _float(0.0, 1.0),
            },
            ("LATENT",),
            _first_input,
            steps_input="steps",
            category="sampling",
        ),
        NodeClass(
            "VAEDecode",
            {"samples": link("LATENT"), "vae": link("VAE")},
            ("IMAGE",),
            _first_input,
            category="latent",
        ),
        NodeClass(
            "CreateVideo",
            {"images": link("IMAGE"), "fps": _float(1.0, 120.0)},
            ("VIDEO",),
            _create_video,
            optional={"audio": link("AUDIO")},
            category="image/video",
        ),
        NodeClass(
            "SaveVideo",
            {
                "video": link("VIDEO"),
                "filename_prefix": STRING,
                "format": _combo("auto", "mp4"),
                "codec": _combo("auto", "h264"),
            },
            (),
            _save_video,
            output_node=True,
            category="image/video",
        ),
        NodeClass(
            "SaveImage",
            {"images": link("IMAGE"), "filename_prefix": STRING},
            (),
            _save_image,
            output_node=True,
            category="image",
        ),
    ]


NODE_CLASSES: Mapping[str, NodeClass] = {cls.name: cls for cls in _classes()}
