"""Drive the real google-genai SDK (async API) against the fake Google image endpoints."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials
from PIL import Image

from tests.fakes.google_image import FakeGoogleImages, Mode, Route
from tests.fakes.google_image_wire import (
    GEMINI_SIZES,
    IMAGEN_SIZES,
    GeminiRequest,
    ImagenRequest,
    Outcome,
    Script,
)

pytestmark = pytest.mark.filterwarnings(
    # google-genai 2.x warns (once a process) that generate_images is deprecated.
    "ignore:The generate_images method is deprecated:google.genai._common.ExperimentalWarning"
)

GEMINI_MODEL = "gemini-2.5-flash-image"
IMAGEN_MODEL = "imagen-4.0-generate-001"
PROJECT, LOCATION = "demo-project", "us-central1"
_SDK_ENV = (
    "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _SDK_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGoogleImages]:
    async with FakeGoogleImages() as server:
        yield server


def make_client(
    fake: FakeGoogleImages, mode: Mode, *, api_key: str | None = None, token: str | None = None
) -> genai.client.AsyncClient:
    """Build the async client of `mode` pointed at the fake, with no SDK retries."""
    http_options = types.HttpOptions(
        base_url=fake.base_url, retry_options=types.HttpRetryOptions(attempts=1)
    )
    if mode is Mode.GEMINI:
        return genai.Client(api_key=api_key or fake.api_key, http_options=http_options).aio
    if mode is Mode.EXPRESS:
        return genai.Client(vertexai=True, api_key=fake.api_key, http_options=http_options).aio
    credentials = Credentials(token=token or fake.token)  # type: ignore[no-untyped-call]
    return genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION, credentials=credentials,
        http_options=http_options,
    ).aio  # fmt: skip


@pytest.fixture(params=[Mode.GEMINI, Mode.VERTEX], ids=str)
async def client(
    request: pytest.FixtureRequest, fake: FakeGoogleImages
) -> AsyncIterator[genai.client.AsyncClient]:
    aio = make_client(fake, request.param)
    yield aio
    await aio.aclose()


@pytest.fixture(params=[Mode.VERTEX, Mode.EXPRESS], ids=str)
async def vertex(
    request: pytest.FixtureRequest, fake: FakeGoogleImages
) -> AsyncIterator[genai.client.AsyncClient]:
    aio = make_client(fake, request.param)
    yield aio
    await aio.aclose()


async def generate(
    aio: genai.client.AsyncClient, prompt: str = "a red fox", *parts: types.Part, **image: object
) -> types.GenerateContentResponse:
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"], image_config=types.ImageConfig.model_validate(image)
    )
    contents: list[types.PartUnion] = [types.Part.from_text(text=prompt), *parts]
    return await aio.models.generate_content(model=GEMINI_MODEL, contents=contents, config=config)


async def imagen(
    aio: genai.client.AsyncClient, prompt: str = "a red fox", **config: object
) -> types.GenerateImagesResponse:
    response: types.GenerateImagesResponse = await aio.models.generate_images(
        model=IMAGEN_MODEL, prompt=prompt, config=types.GenerateImagesConfig.model_validate(config)
    )
    return response


def decoded(data: bytes | None) -> tuple[str | None, tuple[int, int]]:
    assert data is not None
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.format, image.size


def image_parts(response: types.GenerateContentResponse) -> list[types.Blob]:
    candidates = response.candidates or []
    parts = [part for c in candidates if c.content for part in c.content.parts or []]
    return [part.inline_data for part in parts if part.inline_data is not None]


# Gemini image models: generateContent ------------------------------------------------


@pytest.mark.parametrize("aspect", ["1:1", "16:9", "9:16"])
async def test_gemini_image_sizes_follow_the_aspect_ratio(
    fake: FakeGoogleImages, client: genai.client.AsyncClient, aspect: str
) -> None:
    response = await generate(client, aspect_ratio=aspect)

    [blob] = image_parts(response)
    assert blob.mime_type == "image/png"
    assert decoded(blob.data) == ("PNG", GEMINI_SIZES[aspect])
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == 1290
    [call] = fake.calls
    assert call.body == {
        "contents": [{"parts": [{"text": "a red fox"}], "role": "user"}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": aspect},
        },
    }


async def test_gemini_paths_per_mode(fake: FakeGoogleImages) -> None:
    for mode in Mode:
        aio = make_client(fake, mode)
        try:
            await generate(aio)
        finally:
            await aio.aclose()
    assert [record.path for record in fake.requests] == [
        f"/v1beta/models/{GEMINI_MODEL}:generateContent",
        f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{GEMINI_MODEL}:generateContent",
        f"/v1beta1/publishers/google/models/{GEMINI_MODEL}:generateContent",
    ]  # fmt: skip


async def test_gemini_edit_sends_the_input_image_inline_and_seed(
    fake: FakeGoogleImages, client: genai.client.AsyncClient
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(buffer, format="PNG")
    source = types.Part.from_bytes(data=buffer.getvalue(), mime_type="image/png")
    config = types.GenerateContentConfig(response_modalities=["IMAGE"], seed=7)
    contents: list[types.PartUnion] = ["make it blue", source]

    first = await client.models.generate_content(
        model=GEMINI_MODEL, contents=contents, config=config
    )
    again = await client.models.generate_content(
        model=GEMINI_MODEL, contents=contents, config=config
    )

    [call, _] = fake.calls
    assert isinstance(call.request, GeminiRequest)
    assert call.request.images == ((buffer.getvalue(), "image/png"),)
    assert call.request.seed == 7
    # The SDK dumps the Blob without aliases: proto JSON accepts snake_case names too.
    assert call.body["contents"][0]["parts"][1]["inlineData"]["mime_type"] == "image/png"
    assert image_parts(first)[0].data == image_parts(again)[0].data  # same seed, same image


async def test_vertex_can_ask_for_jpeg(fake: FakeGoogleImages) -> None:
    aio = make_client(fake, Mode.VERTEX)
    try:
        response = await generate(aio, aspect_ratio="4:3", output_mime_type="image/jpeg")
    finally:
        await aio.aclose()
    [blob] = image_parts(response)
    assert (blob.mime_type, decoded(blob.data)) == ("image/jpeg", ("JPEG", GEMINI_SIZES["4:3"]))
    image_config = fake.calls[0].body["generationConfig"]["imageConfig"]
    assert image_config["imageOutputOptions"] == {"mimeType": "image/jpeg"}


async def test_gemini_api_refuses_output_mime_type_in_the_sdk(fake: FakeGoogleImages) -> None:
    aio = make_client(fake, Mode.GEMINI)
    try:
        with pytest.raises(ValueError, match="output_mime_type parameter is only supported"):
            await generate(aio, output_mime_type="image/jpeg")
    finally:
        await aio.aclose()
    assert fake.requests == []


async def test_output_filtered(fake: FakeGoogleImages, client: genai.client.AsyncClient) -> None:
    fake.enqueue(Script(Outcome.FILTERED))

    response = await generate(client)

    assert image_parts(response) == []
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert response.candidates[0].content is None


async def test_prompt_blocked(fake: FakeGoogleImages, client: genai.client.AsyncClient) -> None:
    fake.enqueue(Script(Outcome.BLOCKED, block_reason="SAFETY"))

    response = await generate(client)

    assert response.candidates is None
    assert response.prompt_feedback is not None
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY


async def test_text_only_answer(fake: FakeGoogleImages, client: genai.client.AsyncClient) -> None:
    fake.enqueue(Script(Outcome.EMPTY, text="Sorry, no picture."))

    response = await generate(client)

    assert image_parts(response) == []
    assert response.text == "Sorry, no picture."


async def test_gemini_refusals(fake: FakeGoogleImages, client: genai.client.AsyncClient) -> None:
    two = types.GenerateContentConfig(response_modalities=["IMAGE"], candidate_count=2)
    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_content(model=GEMINI_MODEL, contents="x", config=two)
    assert caught.value.code == 400
    assert caught.value.message == f"Multiple candidates is not enabled for models/{GEMINI_MODEL}"

    with pytest.raises(errors.ClientError) as caught:
        await generate(client, aspect_ratio="7:3")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")

    text_only = types.GenerateContentConfig(response_modalities=["TEXT"])
    with pytest.raises(errors.ClientError, match="response modalities"):
        await client.models.generate_content(model=GEMINI_MODEL, contents="x", config=text_only)

    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_content(model="veo-3.0-generate-001", contents="x")
    assert caught.value.code == 404
    assert fake.calls == []


# Imagen: predict ----------------------------------------------------------------------


async def test_imagen_count_sizes_and_body(
    fake: FakeGoogleImages, vertex: genai.client.AsyncClient
) -> None:
    response = await imagen(vertex, number_of_images=3, aspect_ratio="9:16")

    images = [generated.image for generated in response.generated_images or []]
    assert len(images) == 3
    sizes = {decoded(image.image_bytes) for image in images if image is not None}
    assert sizes == {("PNG", IMAGEN_SIZES["9:16"])}
    assert len({image.image_bytes for image in images if image is not None}) == 3
    assert fake.calls[0].body == {
        "instances": [{"prompt": "a red fox"}],
        "parameters": {"sampleCount": 3, "aspectRatio": "9:16"},
    }


async def test_imagen_paths_and_gemini_api_refusal(fake: FakeGoogleImages) -> None:
    for mode in (Mode.VERTEX, Mode.EXPRESS):
        aio = make_client(fake, mode)
        try:
            await imagen(aio, number_of_images=1)
        finally:
            await aio.aclose()
    gemini = make_client(fake, Mode.GEMINI)
    try:
        with pytest.raises(ValueError, match="only supported in Gemini Enterprise Agent Platform"):
            await imagen(gemini)
    finally:
        await gemini.aclose()
    async with aiohttp.ClientSession() as session:
        url = f"{fake.base_url}/v1beta/models/{IMAGEN_MODEL}:predict"
        body = {"instances": [{"prompt": "x"}]}
        headers = {"x-goog-api-key": fake.api_key}
        async with session.post(url, json=body, headers=headers) as answer:
            assert answer.status == 404
            assert (await answer.json())["error"]["status"] == "NOT_FOUND"
    assert [record.path for record in fake.requests] == [
        f"/v1beta1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{IMAGEN_MODEL}:predict",
        f"/v1beta1/publishers/google/models/{IMAGEN_MODEL}:predict",
        f"/v1beta/models/{IMAGEN_MODEL}:predict",
    ]  # fmt: skip


async def test_imagen_seed_needs_the_watermark_off_and_jpeg(
    fake: FakeGoogleImages, vertex: genai.client.AsyncClient
) -> None:
    with pytest.raises(errors.ClientError, match="Seed is not supported when watermark"):
        await imagen(vertex, number_of_images=1, seed=5)

    first = await imagen(
        vertex, number_of_images=1, seed=5, add_watermark=False, output_mime_type="image/jpeg"
    )
    again = await imagen(
        vertex, number_of_images=1, seed=5, add_watermark=False, output_mime_type="image/jpeg"
    )

    [one] = first.generated_images or []
    [two] = again.generated_images or []
    assert one.image is not None and two.image is not None
    assert one.image.mime_type == "image/jpeg"
    assert decoded(one.image.image_bytes) == ("JPEG", IMAGEN_SIZES["1:1"])
    assert one.image.image_bytes == two.image.image_bytes
    call = fake.calls[-1].request
    assert isinstance(call, ImagenRequest)
    assert (call.seed, call.mime_type) == (5, "image/jpeg")


async def test_imagen_refusals(fake: FakeGoogleImages, vertex: genai.client.AsyncClient) -> None:
    with pytest.raises(errors.ClientError, match="Negative prompt is not supported"):
        await imagen(vertex, negative_prompt="blur")
    with pytest.raises(errors.ClientError, match="sampleCount"):
        await imagen(vertex, number_of_images=5)
    with pytest.raises(errors.ClientError, match="aspect ratio"):
        await imagen(vertex, aspect_ratio="21:9")
    assert fake.calls == []


async def test_imagen_filtered_with_and_without_reasons(
    fake: FakeGoogleImages, vertex: genai.client.AsyncClient
) -> None:
    fake.enqueue(Script(Outcome.FILTERED), Script(Outcome.FILTERED))

    silent = await imagen(vertex, number_of_images=2)
    told = await imagen(vertex, number_of_images=2, include_rai_reason=True)

    assert silent.generated_images is None
    # A withheld prediction still gets an (empty) Image: the SDK reads it from the same object.
    told_images = told.generated_images or []
    assert [(g.image and g.image.image_bytes) for g in told_images] == [None, None]
    assert all("usage guidelines" in (g.rai_filtered_reason or "") for g in told_images)


async def test_imagen_partial_and_safety_attributes(
    fake: FakeGoogleImages, vertex: genai.client.AsyncClient
) -> None:
    fake.enqueue(Script(Outcome.PARTIAL, filtered_count=1))

    response = await imagen(
        vertex, number_of_images=3, include_rai_reason=True, include_safety_attributes=True
    )

    generated = response.generated_images or []
    assert [bool(g.image and g.image.image_bytes) for g in generated] == [True, True, False]
    assert generated[0].safety_attributes is not None
    assert generated[0].safety_attributes.categories
    prompt_attributes = response.positive_prompt_safety_attributes
    assert prompt_attributes is not None
    assert prompt_attributes.content_type == "Positive Prompt"


async def test_imagen_blocked_prompt_and_empty(
    fake: FakeGoogleImages, vertex: genai.client.AsyncClient
) -> None:
    fake.enqueue(Script(Outcome.BLOCKED), Script(Outcome.EMPTY))

    with pytest.raises(errors.ClientError) as caught:
        await imagen(vertex, number_of_images=1)
    empty = await imagen(vertex, number_of_images=1)

    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert "Responsible AI practices" in str(caught.value.message)
    assert empty.generated_images is None


# Misbehaviour ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class", "status_name"),
    [
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
async def test_injected_http_errors(
    fake: FakeGoogleImages,
    client: genai.client.AsyncClient,
    status: int,
    error_class: type[errors.APIError],
    status_name: str,
) -> None:
    fake.fail_next(1, status, route=Route.GENERATE)

    with pytest.raises(error_class) as caught:
        await generate(client)

    assert (caught.value.code, caught.value.status) == (status, status_name)
    assert fake.calls == []
    assert image_parts(await generate(client))  # the fault is used up
    assert fake.count(Route.GENERATE) == 2


async def test_dropped_connection_and_route_scoped_faults(fake: FakeGoogleImages) -> None:
    aio = make_client(fake, Mode.VERTEX)
    try:
        fake.fail_next(1, 503, route=Route.PREDICT)
        assert image_parts(await generate(aio))  # a predict fault leaves generateContent alone
        fake.drop_next(1, route=Route.GENERATE)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await generate(aio)
        with pytest.raises(errors.ServerError):
            await imagen(aio, number_of_images=1)
    finally:
        await aio.aclose()
    assert [call.route for call in fake.calls] == [Route.GENERATE]


async def test_random_failures_are_reproducible(fake: FakeGoogleImages) -> None:
    outcomes: list[list[bool]] = []
    aio = make_client(fake, Mode.GEMINI)
    try:
        for _ in range(2):
            fake.fail_randomly(0.5, (429, 503), seed=3)
            run = []
            for _ in range(8):
                try:
                    await generate(aio)
                    run.append(True)
                except errors.APIError:
                    run.append(False)
            outcomes.append(run)
    finally:
        await aio.aclose()
    assert outcomes[0] == outcomes[1]
    assert True in outcomes[0] and False in outcomes[0]


async def test_credentials_are_checked(fake: FakeGoogleImages) -> None:
    for mode, kwargs, code in (
        (Mode.GEMINI, {"api_key": "wrong"}, 400),
        (Mode.VERTEX, {"token": "wrong"}, 401),
    ):
        aio = make_client(fake, mode, **kwargs)
        try:
            with pytest.raises(errors.ClientError) as caught:
                await generate(aio)
        finally:
            await aio.aclose()
        assert caught.value.code == code
    assert fake.calls == []
