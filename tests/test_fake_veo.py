"""Drive the real google-genai SDK (async API) against the fake Veo service."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import pytest
from google import genai
from google.genai import errors, types
from google.oauth2.credentials import Credentials
from PIL import Image

from tests.fakes.veo import FakeVeo, Mode, Outcome, Route, Script
from tests.fakes.veo_media import probe_mp4

MODEL = "veo-3.0-generate-001"
PROJECT, LOCATION = "demo-project", "us-central1"
# The SDK reads these; a developer's shell must not redirect or re-authenticate the tests.
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
async def fake() -> AsyncIterator[FakeVeo]:
    async with FakeVeo() as server:
        yield server


def make_client(
    fake: FakeVeo,
    mode: Mode,
    *,
    api_key: str | None = None,
    token: str | None = None,
    retry: types.HttpRetryOptions | None = None,
) -> genai.client.AsyncClient:
    """Build the async client of `mode` pointed at the fake."""
    http_options = types.HttpOptions(base_url=fake.base_url, retry_options=retry)
    if mode is Mode.GEMINI:
        return genai.Client(api_key=api_key or fake.api_key, http_options=http_options).aio
    if mode is Mode.EXPRESS:
        return genai.Client(vertexai=True, api_key=fake.api_key, http_options=http_options).aio
    credentials = Credentials(token=token or fake.token)  # type: ignore[no-untyped-call]
    return genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION, credentials=credentials,
        http_options=http_options,
    ).aio  # fmt: skip


@pytest.fixture(params=[Mode.GEMINI, Mode.VERTEX], ids=lambda mode: str(mode))
async def client(
    request: pytest.FixtureRequest, fake: FakeVeo
) -> AsyncIterator[genai.client.AsyncClient]:
    aio = make_client(fake, request.param)
    yield aio
    await aio.aclose()


@pytest.fixture
async def gemini(fake: FakeVeo) -> AsyncIterator[genai.client.AsyncClient]:
    aio = make_client(fake, Mode.GEMINI)
    yield aio
    await aio.aclose()


@pytest.fixture
async def vertex(fake: FakeVeo) -> AsyncIterator[genai.client.AsyncClient]:
    aio = make_client(fake, Mode.VERTEX)
    yield aio
    await aio.aclose()


async def start(
    aio: genai.client.AsyncClient, prompt: str = "a red fox in snow", **config: object
) -> types.GenerateVideosOperation:
    # `source=` rather than the deprecated `prompt=`, whose DeprecationWarning is blamed on us.
    return await aio.models.generate_videos(
        model=MODEL,
        source=types.GenerateVideosSource(prompt=prompt),
        config=types.GenerateVideosConfig.model_validate(config),
    )


async def finish(
    aio: genai.client.AsyncClient, operation: types.GenerateVideosOperation, max_polls: int = 10
) -> types.GenerateVideosOperation:
    for _ in range(max_polls):
        operation = await aio.operations.get(operation)
        if operation.done:
            return operation
    raise AssertionError(f"{operation.name} not done after {max_polls} polls")


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_gemini_success_by_uri_downloads_a_decodable_mp4(
    fake: FakeVeo, gemini: genai.client.AsyncClient
) -> None:
    operation = await start(gemini, aspect_ratio="9:16", duration_seconds=4)
    assert re.fullmatch(rf"models/{MODEL}/operations/[a-z0-9]+", str(operation.name))
    assert not operation.done

    polled = await gemini.operations.get(operation)
    assert not polled.done  # the default script answers one "not done" first
    done = await gemini.operations.get(polled)

    assert done.done
    assert done.error is None
    assert done.response is not None
    assert done.response.generated_videos
    video = done.response.generated_videos[0].video
    assert video is not None
    assert video.uri is not None
    assert re.fullmatch(
        r"https://generativelanguage\.googleapis\.com/v1beta/files/[a-z0-9]+:download\?alt=media",
        video.uri,
    )
    data = await gemini.files.download(file=video)
    assert video.video_bytes == data  # the SDK also stores the download on the Video
    clip = probe_mp4(data)
    assert (clip.codec, clip.width, clip.height) == ("h264", 180, 320)
    assert clip.duration == pytest.approx(4.0, abs=0.2)
    assert fake.polls[str(operation.name)] == 2
    assert fake.count(Route.DOWNLOAD, Mode.GEMINI) == 1
    assert fake.starts[0].body == {
        "instances": [{"prompt": "a red fox in snow"}],
        "parameters": {"durationSeconds": 4, "aspectRatio": "9:16"},
    }


async def test_vertex_success_is_inline_by_default_and_clips_are_cached(
    fake: FakeVeo, vertex: genai.client.AsyncClient
) -> None:
    operation = await start(vertex, aspect_ratio="16:9", duration_seconds=6, number_of_videos=2)
    assert operation.name is not None
    assert operation.name.startswith(
        f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/{MODEL}/operations/"
    )

    done = await finish(vertex, operation)

    assert done.response is not None
    assert done.response.generated_videos is not None
    videos = [sample.video for sample in done.response.generated_videos]
    assert len(videos) == 2
    for video in videos:
        assert video is not None
        assert video.uri is None
        assert video.video_bytes is not None
        assert video.mime_type == "video/mp4"
        clip = probe_mp4(video.video_bytes)
        assert (clip.width, clip.height) == (320, 180)
        assert clip.duration == pytest.approx(6.0, abs=0.2)
    assert fake.clips.encodes == 1
    assert fake.starts[0].body["parameters"]["sampleCount"] == 2


async def test_vertex_output_gcs_uri_gives_gcs_uris(
    fake: FakeVeo, vertex: genai.client.AsyncClient
) -> None:
    operation = await start(vertex, output_gcs_uri="gs://flowboard-out/renders")
    done = await finish(vertex, operation)

    assert done.response is not None
    assert done.response.generated_videos
    video = done.response.generated_videos[0].video
    assert video is not None
    assert video.uri is not None
    assert video.video_bytes is None
    assert video.uri.startswith("gs://flowboard-out/renders/")
    clip = probe_mp4(await fake.gcs_object(video.uri))
    assert (clip.width, clip.height, clip.frames) == (320, 180, 64)
    with pytest.raises(ValueError, match="only supported in the Gemini Developer client"):
        await vertex.files.download(file=video)


async def test_gemini_inline_bytes(fake: FakeVeo, gemini: genai.client.AsyncClient) -> None:
    fake.enqueue(Script(Outcome.INLINE, polls_until_done=0))

    done = await finish(gemini, await start(gemini, duration_seconds=5), max_polls=1)

    assert done.response is not None
    assert done.response.generated_videos
    video = done.response.generated_videos[0].video
    assert video is not None
    assert video.uri is None
    assert video.video_bytes is not None
    assert video.mime_type == "video/mp4"
    assert probe_mp4(video.video_bytes).frames == 5 * 8


async def test_operation_error(fake: FakeVeo, client: genai.client.AsyncClient) -> None:
    fake.default_script = Script(Outcome.ERROR, error_code=3, error_message="Prompt too long.")

    done = await finish(client, await start(client))

    assert done.done is True
    assert done.error == {"code": 3, "message": "Prompt too long."}
    assert done.response is None
    assert done.result is None


async def test_content_filtered(fake: FakeVeo, client: genai.client.AsyncClient) -> None:
    reasons = ("Prompt mentions a celebrity.", "Unsafe content.")
    fake.enqueue(Script(Outcome.FILTERED, filtered_count=2, filtered_reasons=reasons))

    done = await finish(client, await start(client))

    assert done.error is None
    assert done.response is not None
    assert done.response.generated_videos is None
    assert done.response.rai_media_filtered_count == 2
    assert done.response.rai_media_filtered_reasons == list(reasons)


async def test_empty_result(fake: FakeVeo, client: genai.client.AsyncClient) -> None:
    fake.enqueue(Script(Outcome.EMPTY))

    done = await finish(client, await start(client))

    assert done.done is True
    assert done.error is None
    assert done.response is not None
    assert done.response.generated_videos is None
    assert done.response.rai_media_filtered_count is None


async def test_never_finishes_and_time_to_done(
    fake: FakeVeo, client: genai.client.AsyncClient
) -> None:
    fake.enqueue(Script(Outcome.NEVER), Script(polls_until_done=0, seconds_until_done=0.3))
    # The clock starts before the timed operation exists, so its 0.3 s is a lower bound
    # however slow the polls of the stuck one are on a loaded machine.
    begun = time.monotonic()
    stuck, timed = await start(client), await start(client)

    for _ in range(5):
        stuck = await client.operations.get(stuck)
        assert not stuck.done
    for _ in range(40):
        timed = await client.operations.get(timed)
        if timed.done:
            break
        await asyncio.sleep(0.05)

    assert timed.done is True
    assert time.monotonic() - begun >= 0.3
    assert fake.polls[str(stuck.name)] == 5
    assert fake.polls[str(timed.name)] >= 2


@pytest.mark.parametrize(
    ("status", "error_class", "status_name"),
    [
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
async def test_injected_http_errors(
    fake: FakeVeo,
    client: genai.client.AsyncClient,
    status: int,
    error_class: type[errors.APIError],
    status_name: str,
) -> None:
    fake.fail_next(1, status, route=Route.START)

    with pytest.raises(error_class) as caught:
        await start(client)

    assert (caught.value.code, caught.value.status) == (status, status_name)
    assert caught.value.message
    assert fake.starts == []
    assert fake.count(Route.START) == 1
    operation = await start(client)  # the fault is used up
    assert [record.operation for record in fake.starts] == [operation.name]


async def test_polls_only_failures_leave_starts_alone(
    fake: FakeVeo, client: genai.client.AsyncClient
) -> None:
    fake.fail_next(2, 500, route=Route.POLL)
    operation = await start(client)

    for _ in range(2):
        with pytest.raises(errors.ServerError):
            await client.operations.get(operation)
    done = await finish(client, operation)

    assert done.response is not None
    assert done.response.generated_videos
    assert fake.count(Route.POLL) == 4
    assert fake.polls[str(operation.name)] == 2


async def test_random_failures_are_reproducible_from_the_seed(
    fake: FakeVeo, gemini: genai.client.AsyncClient
) -> None:
    fake.default_script = Script(Outcome.NEVER)
    operation = await start(gemini)

    async def pattern(seed: int) -> list[int]:
        """Poll 20 times; return the HTTP status of each answer."""
        fake.fail_randomly(0.5, 503, seed=seed, route=Route.POLL)
        statuses = []
        for _ in range(20):
            try:
                await gemini.operations.get(operation)
            except errors.ServerError as error:
                statuses.append(error.code)
            else:
                statuses.append(200)
        return statuses

    first, again = await pattern(7), await pattern(7)
    assert set(first) == {200, 503}
    assert first == again
    fake.fail_randomly(0)
    assert not (await gemini.operations.get(operation)).done


async def test_bad_api_key_is_a_client_error(fake: FakeVeo) -> None:
    aio = make_client(fake, Mode.GEMINI, api_key="wrong-key")
    try:
        with pytest.raises(errors.ClientError) as caught:
            await start(aio)
    finally:
        await aio.aclose()

    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert fake.starts == []


async def test_missing_api_key_and_bad_token(fake: FakeVeo) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{fake.base_url}/v1beta/models/{MODEL}:predictLongRunning"
        async with session.post(url, json={"instances": [{"prompt": "x"}]}) as response:
            body = await response.json()
    assert response.status == 403
    assert body["error"]["status"] == "PERMISSION_DENIED"

    aio = make_client(fake, Mode.VERTEX, token="stolen")
    try:
        with pytest.raises(errors.ClientError) as caught:
            await start(aio)
    finally:
        await aio.aclose()
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")


async def test_rebuilt_operation_polls_and_restart_forgets_it(
    fake: FakeVeo, client: genai.client.AsyncClient
) -> None:
    stored = str((await start(client)).name)

    rebuilt = await finish(client, types.GenerateVideosOperation.model_validate({"name": stored}))
    assert rebuilt.name == stored
    assert rebuilt.response is not None
    assert rebuilt.response.generated_videos

    fake.forget()
    with pytest.raises(errors.ClientError) as caught:
        # `name` is declared on a non-pydantic base class: mypy's pydantic plugin misses it.
        await client.operations.get(types.GenerateVideosOperation(name=stored))  # type: ignore[call-arg]
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


async def test_image_to_video_body_is_recorded(
    fake: FakeVeo, client: genai.client.AsyncClient
) -> None:
    png = png_bytes()
    image = types.Image(image_bytes=png, mime_type="image/png")
    operation = await client.models.generate_videos(
        model=MODEL,
        source=types.GenerateVideosSource(prompt="make it move", image=image),
        config=types.GenerateVideosConfig(aspect_ratio="16:9", duration_seconds=8),
    )

    [record] = fake.starts
    assert record.operation == operation.name
    assert record.model == MODEL
    instance = record.body["instances"][0]
    assert instance["prompt"] == "make it move"
    assert instance["image"] == {
        "bytesBase64Encoded": base64.b64encode(png).decode(),
        "mimeType": "image/png",
    }
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == png


@pytest.mark.parametrize(
    "config",
    [{"aspect_ratio": "1:1"}, {"duration_seconds": 10}, {"number_of_videos": 5}],
    ids=["aspect", "duration", "samples"],
)
async def test_invalid_parameters_are_rejected(
    fake: FakeVeo, client: genai.client.AsyncClient, config: dict[str, object]
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await client.models.generate_videos(
            model=MODEL,
            source=types.GenerateVideosSource(prompt="a red fox in snow"),
            config=types.GenerateVideosConfig.model_validate(config),
        )

    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert fake.starts == []


async def test_cancel_makes_the_operation_cancelled(
    fake: FakeVeo, client: genai.client.AsyncClient
) -> None:
    operation = await start(client)
    vertex = fake.starts[0].mode is Mode.VERTEX
    url = f"{fake.base_url}/{'v1beta1' if vertex else 'v1beta'}/{operation.name}:cancel"
    headers = (
        {"Authorization": f"Bearer {fake.token}"} if vertex else {"x-goog-api-key": fake.api_key}
    )
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers) as response:
        assert response.status == 200
        assert await response.json() == {}

    done = await client.operations.get(operation)

    assert done.done is True
    assert done.error == {"code": 1, "message": "Operation was cancelled."}
    assert fake.cancels == [operation.name]


async def test_dropped_connections_with_retry_options(fake: FakeVeo) -> None:
    # Any retry_options turn off the SDK's own resend; attempts=1 means no retry at all.
    aio = make_client(fake, Mode.GEMINI, retry=types.HttpRetryOptions(attempts=1))
    try:
        fake.drop_next(1, route=Route.START)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await start(aio)
        operation = await start(aio)

        fake.drop_next(1, route=Route.POLL)
        polled = await aio.operations.get(operation)  # aiohttp itself resends a dropped GET once
        assert polled.name == operation.name
        fake.drop_next(2, route=Route.POLL)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await aio.operations.get(operation)
    finally:
        await aio.aclose()

    assert fake.count(Route.START) == 2
    assert len(fake.starts) == 1
    assert fake.count(Route.POLL) == 4
    assert fake.polls[str(operation.name)] == 1


async def test_default_client_resends_a_dropped_start(
    fake: FakeVeo, gemini: genai.client.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without retry_options the SDK resends once after sleeping 1 + randint(0, 9) seconds.
    monkeypatch.setattr(genai._api_client, "random", SimpleNamespace(randint=lambda a, b: 0))
    fake.drop_next(1, route=Route.START)

    operation = await start(gemini)

    assert fake.count(Route.START) == 2
    assert [record.operation for record in fake.starts] == [operation.name]
    starts = fake.arrival_times(Route.START)
    assert starts[1] - starts[0] >= 0.9


async def test_slow_answers_and_request_timestamps(
    fake: FakeVeo, gemini: genai.client.AsyncClient
) -> None:
    fake.default_script = Script(Outcome.NEVER)
    operation = await start(gemini)
    fake.delay, fake.delay_route = 0.2, Route.POLL

    started = time.monotonic()
    for _ in range(3):
        await gemini.operations.get(operation)

    assert time.monotonic() - started >= 0.6
    times = fake.arrival_times(Route.POLL)
    assert len(times) == 3
    assert times == sorted(times)
    assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 0.2
    assert fake.count(mode=Mode.GEMINI) == 4


async def test_express_mode(fake: FakeVeo) -> None:
    aio = make_client(fake, Mode.EXPRESS)
    try:
        done = await finish(aio, await start(aio, duration_seconds=4))
    finally:
        await aio.aclose()

    assert str(done.name).startswith(f"publishers/google/models/{MODEL}/operations/")
    assert done.response is not None
    assert done.response.generated_videos
    video = done.response.generated_videos[0].video
    assert video is not None
    assert video.video_bytes is not None
    assert probe_mp4(video.video_bytes).frames == 32
    assert fake.count(Route.START, Mode.EXPRESS) == 1


async def test_unknown_route_and_model_answer_google_404(
    fake: FakeVeo, gemini: genai.client.AsyncClient
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        await gemini.models.generate_videos(
            model="imagen-4", source=types.GenerateVideosSource(prompt="x")
        )
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")

    url = f"{fake.base_url}/v1beta/nothing"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.json()
    assert response.status == 404
    assert body["error"]["code"] == 404
    assert body["error"]["status"] == "NOT_FOUND"


# Cloud Storage JSON API (Vertex results written to a bucket) ---------------------------


async def test_storage_media_download_metadata_and_delete(
    fake: FakeVeo, vertex: genai.client.AsyncClient
) -> None:
    fake.enqueue(Script(object_padding=3_000_000))
    done = await finish(vertex, await start(vertex, output_gcs_uri="gs://flowboard-out/a b/"))
    assert done.response is not None and done.response.generated_videos
    uri = str(done.response.generated_videos[0].video.uri)  # type: ignore[union-attr]
    bucket, name = uri.removeprefix("gs://").split("/", 1)
    assert name.startswith("a b/") and name.endswith("/sample_0.mp4")
    path = f"/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"
    auth = {"Authorization": f"Bearer {fake.token}"}
    async with aiohttp.ClientSession(fake.base_url) as http:
        async with http.get(f"/download{path}", params={"alt": "media"}, headers=auth) as media:
            assert media.status == 200
            assert media.content_type == "video/mp4"
            body = await media.read()
            assert media.content_length == len(body)
        async with http.get(path, params={"alt": "media"}, headers=auth) as same:
            assert await same.read() == body
        async with http.get(path, headers=auth) as meta:
            assert (await meta.json())["size"] == str(len(body))
        async with http.get(f"/download{path}", params={"alt": "media"}) as anonymous:
            assert anonymous.status == 401
            assert (await anonymous.json())["error"]["errors"][0]["reason"] == "authError"
        async with http.delete(path, headers=auth) as deleted:
            assert deleted.status == 204
        async with http.delete(path, headers=auth) as again:
            assert again.status == 404
            assert "No such object" in (await again.json())["error"]["message"]

    # A real clip, then an MP4 "free" box: the padded object still decodes.
    clip = probe_mp4(body)
    assert (clip.width, clip.height, clip.frames) == (320, 180, 64)
    assert len(body) > 3_000_000
    assert body[-3_000_008:-3_000_000] == (3_000_008).to_bytes(4, "big") + b"free"
    assert fake.bucket.reads == [uri, uri]
    assert fake.bucket.deletes == [uri]
    assert fake.count(Route.MEDIA, Mode.VERTEX) == 4
    assert fake.count(Route.DELETE) == 2
