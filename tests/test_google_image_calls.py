"""Gemini image and Imagen calls (flowboard.providers.google_image) against the fake service."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from google.genai.client import AsyncClient
from PIL import Image

from flowboard.config import VeoSettings
from flowboard.providers.base import (
    BytesOutput,
    ErrorCode,
    InputImage,
    PermanentProviderError,
    TransientProviderError,
)
from flowboard.providers.google_image import (
    GeminiImageCall,
    ImagenCall,
    generate_content_images,
    generate_imagen_images,
)
from flowboard.providers.veo_client import VeoClient
from tests.fakes.google_image import FakeGoogleImages, Route
from tests.fakes.google_image_wire import (
    GEMINI_SIZES,
    IMAGEN_SIZES,
    GeminiRequest,
    Outcome,
    Script,
)

GEMINI_MODEL = "gemini-2.5-flash-image"
IMAGEN_MODEL = "imagen-4.0-generate-001"


@pytest.fixture
async def fake() -> AsyncIterator[FakeGoogleImages]:
    async with FakeGoogleImages() as server:
        yield server


def settings_for(fake: FakeGoogleImages, mode: str) -> VeoSettings:
    if mode == "gemini":
        return VeoSettings(mode="gemini", api_key=fake.api_key, base_url=fake.base_url)
    return VeoSettings(
        mode="vertex", project="demo", access_token=fake.token, base_url=fake.base_url
    )


async def _client(fake: FakeGoogleImages, mode: str) -> AsyncIterator[AsyncClient]:
    client = VeoClient(settings_for(fake, mode), request_timeout_seconds=30)
    try:
        yield await client.aio()
    finally:
        await client.close()


@pytest.fixture(params=["gemini", "vertex"])
async def aio(request: pytest.FixtureRequest, fake: FakeGoogleImages) -> AsyncIterator[AsyncClient]:
    async for client in _client(fake, request.param):
        yield client


@pytest.fixture
async def vertex(fake: FakeGoogleImages) -> AsyncIterator[AsyncClient]:
    async for client in _client(fake, "vertex"):
        yield client


def size_of(output: BytesOutput) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(output.data)) as image:
        return image.format, image.size


def calls(count: int, aspect: str = "16:9", **extra: object) -> list[GeminiImageCall]:
    return [
        GeminiImageCall(GEMINI_MODEL, "a lighthouse", aspect, seed=10 + i, **extra)  # type: ignore[arg-type]
        for i in range(count)
    ]


async def test_gemini_three_images_sized_by_aspect_ratio(
    fake: FakeGoogleImages, aio: AsyncClient
) -> None:
    images = await generate_content_images(aio, calls(3, "9:16"))

    assert [size_of(image) for image in images] == [("PNG", GEMINI_SIZES["9:16"])] * 3
    assert {image.content_type for image in images} == {"image/png"}
    assert len({image.data for image in images}) == 3
    seeds = sorted(c.request.seed or 0 for c in fake.calls if isinstance(c.request, GeminiRequest))
    assert seeds == [10, 11, 12]


async def test_gemini_edit_sends_the_input_images(fake: FakeGoogleImages, aio: AsyncClient) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(buffer, format="JPEG")
    source = InputImage(buffer.getvalue(), "image/jpeg")

    [image] = await generate_content_images(aio, calls(1, "1:1", images=(source,)))

    assert size_of(image) == ("PNG", GEMINI_SIZES["1:1"])
    [call] = fake.calls
    assert isinstance(call.request, GeminiRequest)
    assert call.request.images == ((source.data, "image/jpeg"),)


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (Script(Outcome.FILTERED), ErrorCode.CONTENT_FILTERED),
        (Script(Outcome.BLOCKED), ErrorCode.CONTENT_FILTERED),
        (Script(Outcome.EMPTY), ErrorCode.EMPTY_RESULT),
    ],
)
async def test_gemini_filtered_blocked_and_empty(
    fake: FakeGoogleImages, aio: AsyncClient, script: Script, code: ErrorCode
) -> None:
    fake.enqueue(script)
    with pytest.raises(PermanentProviderError) as caught:
        await generate_content_images(aio, calls(1))
    assert caught.value.code is code


async def test_gemini_keeps_the_images_made_when_one_was_withheld(
    fake: FakeGoogleImages, aio: AsyncClient
) -> None:
    fake.enqueue(Script(), Script(Outcome.FILTERED), Script())
    images = await generate_content_images(aio, calls(3))
    assert len(images) == 2


@pytest.mark.parametrize(("status", "transient"), [(429, True), (503, True), (400, False)])
async def test_gemini_http_errors(
    fake: FakeGoogleImages, aio: AsyncClient, status: int, transient: bool
) -> None:
    fake.fail_next(1, status)
    expected = TransientProviderError if transient else PermanentProviderError
    with pytest.raises(expected) as caught:
        await generate_content_images(aio, calls(1))
    assert f"HTTP {status}" in caught.value.message
    if not transient:  # the request's own fault, as for a video start
        assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert caught.value.message.startswith("Gemini image generation failed")


async def test_imagen_three_images_and_seed(fake: FakeGoogleImages, vertex: AsyncClient) -> None:
    call = ImagenCall(IMAGEN_MODEL, "a lighthouse", count=3, aspect_ratio="4:3", seed=9)

    images = await generate_imagen_images(vertex, call)

    assert [size_of(image) for image in images] == [("PNG", IMAGEN_SIZES["4:3"])] * 3
    parameters = fake.calls[0].body["parameters"]
    assert parameters["seed"] == 9
    assert parameters["addWatermark"] is False
    assert parameters["includeRaiReason"] is True
    assert parameters["sampleCount"] == 3


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (Script(Outcome.FILTERED), ErrorCode.CONTENT_FILTERED),
        (Script(Outcome.BLOCKED), ErrorCode.CONTENT_FILTERED),
        (Script(Outcome.EMPTY), ErrorCode.EMPTY_RESULT),
    ],
)
async def test_imagen_filtered_blocked_and_empty(
    fake: FakeGoogleImages, vertex: AsyncClient, script: Script, code: ErrorCode
) -> None:
    fake.enqueue(script)
    with pytest.raises(PermanentProviderError) as caught:
        await generate_imagen_images(vertex, ImagenCall(IMAGEN_MODEL, "x", 2, "1:1"))
    assert caught.value.code is code


async def test_imagen_partial_and_transient(fake: FakeGoogleImages, vertex: AsyncClient) -> None:
    fake.enqueue(Script(Outcome.PARTIAL, filtered_count=2))
    images = await generate_imagen_images(vertex, ImagenCall(IMAGEN_MODEL, "x", 3, "16:9"))
    assert len(images) == 1

    fake.fail_next(1, 429, route=Route.PREDICT)
    with pytest.raises(TransientProviderError, match="Imagen generation failed: HTTP 429"):
        await generate_imagen_images(vertex, ImagenCall(IMAGEN_MODEL, "x", 1, "16:9"))
