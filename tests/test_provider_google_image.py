"""The gemini_image and imagen providers against the fake Google image service."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from flowboard.config import ConfigError, VeoSettings, load_settings
from flowboard.providers.base import (
    BytesOutput,
    ErrorCode,
    ImageRequest,
    InputImage,
    InvalidProviderRequest,
    PermanentProviderError,
    Progress,
)
from flowboard.providers.gemini_image import GeminiImageProvider
from flowboard.providers.google_image_settings import GeminiImageSettings, ImagenSettings
from flowboard.providers.imagen import ImagenProvider
from flowboard.providers.registry import (
    ProviderRegistry,
    UnknownProvider,
    builtin_specs,
    fill_registry,
    open_providers,
)
from tests.fakes.google_image import FakeGoogleImages, Mode
from tests.fakes.google_image_wire import (
    GEMINI_SIZES,
    IMAGEN_SIZES,
    GeminiRequest,
    ImagenRequest,
    Outcome,
    Script,
)


def ask(**changes: Any) -> ImageRequest:
    """An image request with test defaults."""
    base = ImageRequest(job_id="asset_1", prompt="a lighthouse at dusk")
    return dataclasses.replace(base, **changes)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGoogleImages]:
    async with FakeGoogleImages() as server:
        yield server


def veo_settings(fake: FakeGoogleImages, mode: Mode) -> VeoSettings:
    if mode is Mode.GEMINI:
        return VeoSettings(mode="gemini", api_key=fake.api_key)
    if mode is Mode.EXPRESS:
        return VeoSettings(mode="vertex", api_key=fake.api_key)
    return VeoSettings(mode="vertex", project="demo", access_token=fake.token)


def gemini_provider(fake: FakeGoogleImages, veo: VeoSettings) -> GeminiImageProvider:
    return GeminiImageProvider(GeminiImageSettings(enabled=True, base_url=fake.base_url), veo)


def imagen_provider(fake: FakeGoogleImages, veo: VeoSettings) -> ImagenProvider:
    return ImagenProvider(ImagenSettings(enabled=True, base_url=fake.base_url), veo)


async def ignore(progress: Progress) -> None:
    del progress


def sizes(images: Sequence[BytesOutput]) -> list[tuple[int, int]]:
    found = []
    for image in images:
        with Image.open(io.BytesIO(image.data)) as decoded:
            found.append(decoded.size)
    return found


@pytest.mark.parametrize("mode", [Mode.GEMINI, Mode.VERTEX], ids=str)
async def test_gemini_image_count_three(fake: FakeGoogleImages, mode: Mode) -> None:
    provider = gemini_provider(fake, veo_settings(fake, mode))
    request = ask(count=3, aspect_ratio="16:9", seed=2**32 - 2)
    try:
        operation = await provider.start(request)
        images = await provider.follow(operation, request, ignore)
    finally:
        await provider.close()

    assert operation == "gemini_image:asset_1"
    assert sizes(images) == [GEMINI_SIZES["16:9"]] * 3
    seeds = sorted(c.request.seed or 0 for c in fake.calls if isinstance(c.request, GeminiRequest))
    assert seeds == [0, 2**32 - 2, 2**32 - 1]  # seed, seed + 1, … wrapping at 2**32
    assert {c.mode for c in fake.calls} == {mode}


async def test_gemini_image_refusals_and_filter(fake: FakeGoogleImages) -> None:
    provider = gemini_provider(fake, veo_settings(fake, Mode.GEMINI))
    try:
        for request, field in (
            (ask(negative_prompt="blur"), "negative_prompt"),
            (ask(aspect_ratio="7:3"), "aspect_ratio"),
            (ask(count=5), "count"),
            (ask(model="imagen-4.0-generate-001"), "model"),
            (ask(images=(InputImage(b"GIF89a", "image/gif"),)), "images"),
        ):
            with pytest.raises(InvalidProviderRequest, match=f"^{field}:"):
                await provider.start(request)
        fake.enqueue(Script(Outcome.FILTERED))
        with pytest.raises(PermanentProviderError) as caught:
            await provider.follow("gemini_image:asset_1", ask(), ignore)
    finally:
        await provider.close()
    assert caught.value.code is ErrorCode.CONTENT_FILTERED
    assert len(fake.calls) == 1  # refused requests never left


async def test_gemini_image_needs_veo_credentials(fake: FakeGoogleImages) -> None:
    provider = gemini_provider(fake, VeoSettings())
    try:
        with pytest.raises(InvalidProviderRequest, match=r"providers\.veo\.api_key"):
            await provider.start(ask())
    finally:
        await provider.close()


@pytest.mark.parametrize("mode", [Mode.VERTEX, Mode.EXPRESS], ids=str)
async def test_imagen_count_three(fake: FakeGoogleImages, mode: Mode) -> None:
    provider = imagen_provider(fake, veo_settings(fake, mode))
    request = ask(count=3, aspect_ratio="3:4", seed=4)
    try:
        images = await provider.follow(await provider.start(request), request, ignore)
    finally:
        await provider.close()
    assert sizes(images) == [IMAGEN_SIZES["3:4"]] * 3
    [call] = fake.calls
    assert isinstance(call.request, ImagenRequest)
    assert (call.mode, call.request.samples, call.request.seed) == (mode, 3, 4)


async def test_imagen_refusals(fake: FakeGoogleImages) -> None:
    gemini = imagen_provider(fake, veo_settings(fake, Mode.GEMINI))
    vertex = imagen_provider(fake, veo_settings(fake, Mode.VERTEX))
    source = InputImage(b"\x89PNG", "image/png")
    try:
        with pytest.raises(InvalidProviderRequest, match="needs Vertex AI"):
            await gemini.start(ask())
        for request, field in (
            (ask(negative_prompt="blur"), "negative_prompt"),
            (ask(aspect_ratio="21:9"), "aspect_ratio"),
            (ask(images=(source,)), "images"),
            (ask(model="gemini-2.5-flash-image"), "model"),
        ):
            with pytest.raises(InvalidProviderRequest, match=f"^{field}:"):
                await vertex.start(request)
        # Imagen 3.0-generate-001 still takes a negative prompt.
        older = ask(model="imagen-3.0-generate-001", negative_prompt="blur")
        assert await vertex.start(older) == "imagen:asset_1"
    finally:
        await gemini.close()
        await vertex.close()
    assert fake.requests == []


async def test_registry_builds_them_when_enabled(fake: FakeGoogleImages, tmp_path: Path) -> None:
    providers = {
        "veo": {"mode": "vertex", "project": "demo", "access_token": fake.token},
        "gemini_image": {"enabled": True, "base_url": fake.base_url},
        "imagen": {"enabled": True, "base_url": fake.base_url},
    }
    settings = load_settings(
        None, environ={}, overrides={"data_dir": str(tmp_path), "providers": providers}
    )
    async with open_providers(settings) as registry:
        assert isinstance(registry.image("gemini_image"), GeminiImageProvider)
        assert isinstance(registry.image("imagen"), ImagenProvider)
        request = ImageRequest("asset_9", "a lighthouse", count=2, aspect_ratio="16:9")
        imagen = registry.image("imagen")
        outputs = await imagen.follow(await imagen.start(request), request, ignore)
    assert len(outputs) == 2


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ({"gemini_image": {"enabled": True}}, "needs Google credentials"),
        ({"veo": {"api_key": "k"}, "imagen": {"enabled": True}}, "Imagen needs Vertex AI"),
    ],
)
def test_enabled_without_usable_credentials_stops_start_up(
    providers: dict[str, object], message: str, tmp_path: Path
) -> None:
    settings = load_settings(
        None, environ={}, overrides={"data_dir": str(tmp_path), "providers": providers}
    )
    with pytest.raises(ConfigError, match=message):
        fill_registry(ProviderRegistry({}), settings, builtin_specs(), tmp_path)


async def test_off_by_default(tmp_path: Path) -> None:
    settings = load_settings(None, environ={}, overrides={"data_dir": str(tmp_path)})
    async with open_providers(settings) as registry:
        with pytest.raises(UnknownProvider):
            registry.image("gemini_image")
