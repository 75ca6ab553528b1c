"""ComfyUI image workflows: the same workflow mapping and prompt machinery as video.

An image_gen node runs a configured workflow whose output node is a `SaveImage`-style
node (its files are listed under `images`); every file it saved is one image. `count`
images are one prompt with the workflow's `batch_size` input set (a workflow that maps
none makes one image). The video provider's connection, uploads and prompt follower are
shared: this class only says how an image request fills a workflow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from flowboard.providers.base import (
    BytesOutput,
    ErrorCode,
    ImageRequest,
    InvalidProviderRequest,
    PermanentProviderError,
    ProgressCallback,
)
from flowboard.providers.comfyui import ComfyUIProvider, PromptJob
from flowboard.providers.comfyui_workflow import Inputs, Workflow, derived_seed

_LOGGER = logging.getLogger(__name__)

# Width x height per aspect ratio: about a megapixel in multiples of 64, the sizes SDXL
# and its successors were trained at; SD 1.5 workflows can ignore them (map no size).
IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "4:3": (1152, 896),
    "3:4": (896, 1152), "3:2": (1216, 832), "2:3": (832, 1216), "21:9": (1536, 640),
}  # fmt: skip
MAX_COUNT = 4
_IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp"}


def _refuse(field: str, problem: str) -> InvalidProviderRequest:
    return InvalidProviderRequest(f"{field}: {problem}")


def check_image_request(workflow: Workflow, request: ImageRequest) -> None:
    """Refuse (422, naming the field) what this workflow cannot honour for an image."""
    has = workflow.targets.__contains__
    name = workflow.name
    if request.images and not has("image"):
        raise _refuse("images", f"workflow {name!r} has no image input")
    if len(request.images) > 1:
        raise _refuse("images", "a ComfyUI workflow takes one input image")
    if request.prompt.strip() and not has("prompt"):
        raise _refuse("prompt", f"workflow {name!r} has no prompt input")
    if request.negative_prompt and not has("negative_prompt"):
        raise _refuse("negative_prompt", f"workflow {name!r} has no negative prompt input")
    if (has("width") or has("height")) and request.aspect_ratio not in IMAGE_SIZES:
        raise _refuse("aspect_ratio", f"must be one of {', '.join(IMAGE_SIZES)}")
    if not 1 <= request.count <= MAX_COUNT:
        raise _refuse("count", f"must be between 1 and {MAX_COUNT}")
    if request.count > 1 and not has("batch_size"):
        raise _refuse("count", f"workflow {name!r} maps no batch_size, so it makes one image")


def image_inputs(workflow: Workflow, request: ImageRequest, image: str | None) -> Inputs:
    """Turn a checked image request (and the uploaded image's name) into workflow inputs."""
    width = height = None
    if "width" in workflow.targets or "height" in workflow.targets:
        width, height = IMAGE_SIZES[request.aspect_ratio]
    return Inputs(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        image=image,
        width=width,
        height=height,
        seed=request.seed if request.seed is not None else derived_seed(request.job_id),
        batch_size=request.count,
    )


class ComfyUIImageProvider:
    """Runs configured ComfyUI workflows as image jobs; satisfies `ImageProvider`."""

    name = "comfyui"
    owns_call_retries = True  # each HTTP call retries itself (ComfyTiming.retry)

    def __init__(self, comfy: ComfyUIProvider) -> None:
        self._comfy = comfy  # owns the connections: closed by the video side

    @property
    def deadline_seconds(self) -> float:
        return self._comfy.deadline_seconds

    def _job(self, request: ImageRequest, *, check: bool = True) -> PromptJob:
        settings = self._comfy.settings
        default = settings.image_workflow or settings.workflow
        workflow = self._comfy.workflow_named(request.workflow or default)
        if check:
            check_image_request(workflow, request)
        upload = request.images[0] if request.images else None
        inputs = partial(image_inputs, workflow, request)
        return PromptJob(request.job_id, request.resumed, workflow, upload, inputs)

    def validate(self, request: ImageRequest) -> None:
        self._job(request)

    async def start(self, request: ImageRequest) -> str:
        return await self._comfy.start_job(self._job(request))

    async def follow(
        self, operation_id: str, request: ImageRequest, report: ProgressCallback
    ) -> Sequence[BytesOutput]:
        """Wait for the prompt; return every image its output node saved."""
        job = self._job(request, check=False)
        files = await self._comfy.follow_job(operation_id, job, report)
        extra = {"prompt_id": operation_id, "job_id": request.job_id}
        images = []
        for file in files:
            data, content_type = await self._comfy.read_file(file, extra)
            if content_type not in _IMAGE_TYPES:
                message = f"ComfyUI output {file.filename} is {content_type}, not an image"
                raise PermanentProviderError(ErrorCode.PROVIDER_ERROR, message)
            images.append(BytesOutput(data, content_type))
        _LOGGER.info("comfyui images read: %d", len(images), extra=extra)
        return images

    async def cancel(self, operation_id: str) -> None:
        await self._comfy.cancel(operation_id)

    async def close(self) -> None:
        """Nothing of its own to close: the video provider owns the client and socket."""
