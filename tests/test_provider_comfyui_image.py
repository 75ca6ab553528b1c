"""ComfyUI image workflows (comfyui_image) against the fake ComfyUI over HTTP and websockets."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from flowboard.config import ComfyUISettings, ComfyWorkflowSettings
from flowboard.providers.base import (
    ErrorCode,
    ImageRequest,
    InputImage,
    InvalidProviderRequest,
    PermanentProviderError,
    Progress,
)
from flowboard.providers.comfyui import ComfyUIProvider
from flowboard.providers.comfyui_image import IMAGE_SIZES, ComfyUIImageProvider
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.comfyui_media import scaled_size
from tests.test_provider_comfyui import FAST, T2V, WORKFLOWS

T2I = {
    "prompt": "6.text", "negative_prompt": "7.text", "width": "5.width", "height": "5.height",
    "seed": "3.seed", "batch_size": "5.batch_size", "output_node": "9",
}  # fmt: skip


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(tmp_path / "comfy") as server:
        yield server


@pytest.fixture
async def images(fake: FakeComfyUI, tmp_path: Path) -> AsyncIterator[ComfyUIImageProvider]:
    single = {key: value for key, value in T2I.items() if key != "batch_size"}
    table = {
        "t2v": {**T2V, "file": str(WORKFLOWS / "text_to_video.json")},
        "t2i": {**T2I, "file": str(WORKFLOWS / "text_to_image.json")},
        "single": {**single, "file": str(WORKFLOWS / "text_to_image.json")},
    }
    settings = ComfyUISettings(
        url=fake.url,
        workflow="t2v",
        image_workflow="t2i",
        workflows={k: ComfyWorkflowSettings.model_validate(v) for k, v in table.items()},
    )
    video = ComfyUIProvider(settings, tmp_path / "work", timing=FAST)
    yield ComfyUIImageProvider(video)
    await video.close()


async def ignore(progress: Progress) -> None:
    del progress


def decoded(data: bytes) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(data)) as image:
        return image.format, image.size


async def test_three_images_from_one_batched_prompt(
    fake: FakeComfyUI, images: ComfyUIImageProvider
) -> None:
    request = ImageRequest("asset_1", "a lighthouse", count=3, aspect_ratio="16:9", seed=11)

    prompt_id = await images.start(request)
    outputs = await images.follow(prompt_id, request, ignore)

    # The fake draws its PNGs scaled down (sides <= its MAX_SIDE), keeping the shape.
    width, height = IMAGE_SIZES["16:9"]
    assert [decoded(o.data) for o in outputs] == [("PNG", scaled_size(width, height))] * 3
    assert {o.content_type for o in outputs} == {"image/png"}
    [submitted] = fake.prompts
    graph = submitted.prompt
    assert graph["5"]["inputs"] == {"width": 1344, "height": 768, "batch_size": 3}
    assert (graph["3"]["inputs"]["seed"], graph["6"]["inputs"]["text"]) == (11, "a lighthouse")


async def test_refusals_name_the_field(images: ComfyUIImageProvider) -> None:
    png = InputImage(b"\x89PNG", "image/png")
    for request, field in (
        (ImageRequest("a", "x", count=2, workflow="single"), "count"),
        (ImageRequest("a", "x", aspect_ratio="5:4"), "aspect_ratio"),
        (ImageRequest("a", "x", images=(png,)), "images"),
        (ImageRequest("a", "x", count=5), "count"),
    ):
        with pytest.raises(InvalidProviderRequest, match=f"^{field}:"):
            images.validate(request)
    with pytest.raises(InvalidProviderRequest, match="not configured"):
        images.validate(ImageRequest("a", "x", workflow="nope"))


async def test_a_video_output_is_not_taken_for_an_image(images: ComfyUIImageProvider) -> None:
    # The video workflow's SaveVideo answers an mp4: never stored as an image.
    request = ImageRequest("asset_2", "x", workflow="t2v")
    job = images._job(request, check=False)  # the t2v mapping has no batch_size or size checks
    operation = await images._comfy.start_job(job)
    with pytest.raises(PermanentProviderError) as caught:
        await images.follow(operation, request, ignore)
    assert caught.value.code is ErrorCode.PROVIDER_ERROR
    assert "not an image" in caught.value.message
