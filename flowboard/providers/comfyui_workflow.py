"""ComfyUI workflows: load API-format JSON, check the parameter mapping, fill in a request."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowboard.config import ComfyUISettings, ComfyWorkflowSettings, ConfigError, Settings
from flowboard.providers.base import InvalidVideoRequest, VideoRequest

Graph = dict[str, Any]

# Fields of ComfyWorkflowSettings that name a "<node id>.<input name>" target.
MAPPED_FIELDS = (
    "prompt",
    "negative_prompt",
    "image",
    "width",
    "height",
    "frames",
    "seconds",
    "fps",
    "seed",
    "batch_size",
)
SHORT_SIDES = {"480p": 480, "720p": 720, "1080p": 1080}
ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
# Video diffusion models (Wan, Hunyuan) need sides in multiples of 16.
SIZE_STEP = 16
DEFAULT_FPS = 24
MAX_FRAMES = 3600  # 60 s at 60 fps: anything longer is a mistake, not a request
SEED_SPACE = 2**32
_SEED_NAMESPACE = uuid.UUID("6f1c2d4e-9a57-4d8b-a1f0-3c6e2b7d9e10")


@dataclass(frozen=True)
class Target:
    """One mapped input: the node id and the input name inside it."""

    node: str
    name: str

    def __str__(self) -> str:
        return f"{self.node}.{self.name}"


@dataclass(frozen=True)
class Workflow:
    """A checked workflow.

    name: the key under providers.comfyui.workflows.
    graph: the API-format prompt as loaded (never mutated; `fill` copies it).
    targets: the mapped parameters by field name (unmapped fields are absent).
    output_node: the node whose `images` output holds the video.
    """

    name: str
    graph: Graph
    targets: dict[str, Target]
    output_node: str

    def literal(self, field: str) -> Any:
        """Return the workflow's own value of a mapped input, or None when unmapped."""
        target = self.targets.get(field)
        return None if target is None else self.graph[target.node]["inputs"][target.name]

    @property
    def default_fps(self) -> float:
        """Return the frame rate the workflow file sets, or DEFAULT_FPS."""
        value = self.literal("fps")
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        return float(value) if ok else float(DEFAULT_FPS)

    @property
    def fixed_length(self) -> bool:
        """Say whether the workflow makes its own length (neither frames nor seconds mapped)."""
        return "frames" not in self.targets and "seconds" not in self.targets


@dataclass(frozen=True)
class Inputs:
    """Values to put into a workflow; None leaves the workflow's own value."""

    prompt: str | None = None
    negative_prompt: str | None = None
    image: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    seconds: int | None = None
    fps: float | None = None
    seed: int | None = None
    batch_size: int | None = None


def _problem(name: str, setting: str, message: str) -> ConfigError:
    """A start-up error naming the setting: providers.comfyui.workflows.<name>.<setting>."""
    return ConfigError(f"config error: providers.comfyui.workflows.{name}.{setting}: {message}")


def _read_graph(name: str, file: str) -> Graph:
    # Relative paths in a config file were made absolute against its folder when loaded.
    path = Path(file).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _problem(name, "file", f"file not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise _problem(name, "file", f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or "nodes" in data:
        message = f"{path} is not an API-format workflow (export it with Save (API))"
        raise _problem(name, "file", message)
    for node_id, node in data.items():
        if not (
            isinstance(node, dict) and "class_type" in node and isinstance(node.get("inputs"), dict)
        ):
            raise _problem(name, "file", f"{path}: node {node_id} has no class_type or inputs")
    return data


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _target(name: str, field: str, spec: str, graph: Graph) -> Target:
    node, dot, input_name = spec.rpartition(".")
    if not dot or not node or not input_name:
        raise _problem(name, field, f"{spec!r} is not '<node id>.<input name>'")
    if node not in graph:
        raise _problem(name, field, f"node {node} is not in the workflow")
    inputs = graph[node]["inputs"]
    if input_name not in inputs:
        kind = graph[node]["class_type"]
        raise _problem(name, field, f"node {node} ({kind}) has no input {input_name!r}")
    if _is_link(inputs[input_name]):
        # Overwriting a link would cut the graph; the mapping must name a widget value.
        raise _problem(name, field, f"{spec} is a link, not a value")
    return Target(node, input_name)


def load_workflow(name: str, settings: ComfyWorkflowSettings) -> Workflow:
    """Read and check one configured workflow; raise ConfigError naming what is wrong."""
    graph = _read_graph(name, settings.file)
    if settings.output_node not in graph:
        message = f"node {settings.output_node} is not in the workflow"
        raise _problem(name, "output_node", message)
    targets = {
        field: _target(name, field, spec, graph)
        for field in MAPPED_FIELDS
        if (spec := getattr(settings, field))
    }
    return Workflow(name, graph, targets, settings.output_node)


def load_workflows(settings: ComfyUISettings) -> dict[str, Workflow]:
    """Load every configured workflow once."""
    return {name: load_workflow(name, wf) for name, wf in settings.workflows.items()}


def check_settings(settings: Settings) -> None:
    """Load the configured workflows before anything starts; raise ConfigError if one is bad."""
    comfyui = settings.providers.comfyui
    if not comfyui.url:
        return
    workflows = load_workflows(comfyui)
    if comfyui.workflow not in workflows:
        known = ", ".join(sorted(workflows)) or "none"
        raise ConfigError(
            f"config error: providers.comfyui.workflow: {comfyui.workflow!r} is not among "
            f"providers.comfyui.workflows (configured: {known})"
        )


def frame_size(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """Return (width, height) in multiples of SIZE_STEP; raise InvalidVideoRequest if unknown."""
    if aspect_ratio not in ASPECTS:
        raise InvalidVideoRequest(f"aspectRatio must be one of {', '.join(ASPECTS)}")
    if resolution not in SHORT_SIDES:
        raise InvalidVideoRequest(f"resolution must be one of {', '.join(SHORT_SIDES)}")
    across, down = ASPECTS[aspect_ratio]
    short = SHORT_SIDES[resolution]
    long = short * max(across, down) / min(across, down)

    def snap(side: float) -> int:
        return max(SIZE_STEP, round(side / SIZE_STEP) * SIZE_STEP)

    return (snap(long), snap(short)) if across >= down else (snap(short), snap(long))


def derived_seed(job_id: str) -> int:
    """Return a seed fixed per job: a retry repeats the job, a new job gets a new video."""
    return uuid.uuid5(_SEED_NAMESPACE, job_id).int % SEED_SPACE


def check_request(workflow: Workflow, request: VideoRequest) -> None:
    """Raise InvalidVideoRequest, naming the field, for what this workflow cannot honour.

    A workflow that maps neither `frames` nor `seconds` makes its own length: the
    requested duration is then ignored, and the asset records the real one.
    """
    has = workflow.targets.__contains__
    if request.first_frame is not None and not has("image"):
        raise InvalidVideoRequest(
            f"first frame: workflow {workflow.name!r} has no image input (use an image workflow)"
        )
    if request.prompt and not has("prompt"):
        raise InvalidVideoRequest(f"prompt: workflow {workflow.name!r} has no prompt input")
    _check_fps(workflow, request.fps)
    if has("width") or has("height"):
        frame_size(request.aspect_ratio, request.resolution)
    if request.duration_seconds < 1:
        raise InvalidVideoRequest("durationSeconds must be at least 1")
    frames = frame_count(request.duration_seconds, request.fps or workflow.default_fps)
    if has("frames") and frames > MAX_FRAMES:
        raise InvalidVideoRequest(
            f"durationSeconds * fps is {frames} frames; at most {MAX_FRAMES} are allowed"
        )


def _check_fps(workflow: Workflow, fps: float | None) -> None:
    if fps is None:
        return
    if "fps" not in workflow.targets:
        raise InvalidVideoRequest(f"fps: workflow {workflow.name!r} has no fps input")
    literal = workflow.literal("fps")
    if isinstance(literal, int) and not float(fps).is_integer():
        # An INT input (e.g. VHS_VideoCombine's frame_rate) would refuse 23.976.
        target = workflow.targets["fps"]
        raise InvalidVideoRequest(
            f"fps: workflow {workflow.name!r} takes whole frame rates only ({target} is an "
            f"integer input), got {fps:g}"
        )


def frame_count(seconds: float, fps: float) -> int:
    """Return the frames of `seconds` at `fps` (23.976 fps for 4 s is 96 frames)."""
    return max(1, round(seconds * fps))


def inputs_for(workflow: Workflow, request: VideoRequest, image: str | None) -> Inputs:
    """Turn a checked request (and the uploaded image's name) into workflow inputs."""
    fps = request.fps or workflow.default_fps
    width = height = None
    if "width" in workflow.targets or "height" in workflow.targets:
        width, height = frame_size(request.aspect_ratio, request.resolution)
    return Inputs(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image=image,
        width=width,
        height=height,
        frames=frame_count(request.duration_seconds, fps),
        seconds=request.duration_seconds,
        fps=fps,
        seed=request.seed if request.seed is not None else derived_seed(request.job_id),
    )


def _coerce(current: Any, value: Any) -> Any:
    """Keep the workflow's number type: FLOAT inputs stay floats, INT inputs stay ints."""
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def fill(workflow: Workflow, inputs: Inputs) -> Graph:
    """Return a copy of the graph with every mapped, given input set."""
    graph = copy.deepcopy(workflow.graph)
    for field, target in workflow.targets.items():
        value = getattr(inputs, field)
        if value is None:
            continue
        node_inputs = graph[target.node]["inputs"]
        node_inputs[target.name] = _coerce(node_inputs[target.name], value)
    return graph
