"""VeoProvider driven through the real google-genai SDK against the fake Veo service."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from flowboard.config import VeoSettings
from flowboard.providers.base import (
    ErrorCode,
    InputImage,
    InvalidVideoRequest,
    PermanentProviderError,
    Progress,
    ReleasableOutput,
    TransientProviderError,
    Variants,
    VideoOutput,
    VideoProvider,
    VideoRequest,
)
from flowboard.providers.veo import VeoProvider, estimate_percent
from flowboard.providers.veo_client import env_proxy
from tests.fakes.veo import FakeVeo, Mode, Outcome, Route, Script
from tests.fakes.veo_media import probe_mp4

PROJECT, LOCATION = "demo-project", "us-central1"
API_KEY = "AIzaSy-flowboard-secret-key-0123456789"
TOKEN = "ya29.flowboard-secret-token-0123456789"
_SDK_ENV = (
    "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_APPLICATION_CREDENTIALS",
)  # fmt: skip
_PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
BASE_REQUEST = VideoRequest(
    job_id="job-1",
    prompt="a red fox in snow",
    duration_seconds=4,
    aspect_ratio="16:9",
    resolution="720p",
)


@pytest.fixture(autouse=True)
def _clean_sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK reads these; a developer's shell must not redirect or re-authenticate tests.
    for name in (*_SDK_ENV, *_PROXY_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeVeo]:
    async with FakeVeo(api_key=API_KEY, token=TOKEN) as server:
        yield server


@pytest.fixture(params=[Mode.GEMINI, Mode.VERTEX], ids=str)
def mode(request: pytest.FixtureRequest) -> Mode:
    return Mode(request.param)


def make_settings(fake: FakeVeo, mode: Mode, **changes: Any) -> VeoSettings:
    """Settings pointed at the fake, with fast polls."""
    values: dict[str, Any] = {
        "mode": str(mode),
        "api_key": API_KEY if mode is Mode.GEMINI else "",
        "project": PROJECT,
        "location": LOCATION,
        "access_token": TOKEN,
        "base_url": fake.base_url,
        "first_poll_seconds": 0.01,
        "poll_interval_seconds": 0.01,
        "poll_max_seconds": 0.05,
        "typical_seconds": 1.0,
    }
    return VeoSettings.model_validate(values | changes)


def make_provider(fake: FakeVeo, mode: Mode, **changes: Any) -> VeoProvider:
    """A provider with fast retries."""
    settings = make_settings(fake, mode, **changes)
    return VeoProvider(
        settings, attempts=5, retry_initial_seconds=0.01, retry_max_seconds=0.05,
        request_timeout_seconds=10,
    )  # fmt: skip


@pytest.fixture
async def provider(fake: FakeVeo, mode: Mode) -> AsyncIterator[VeoProvider]:
    veo = make_provider(fake, mode)
    yield veo
    await veo.close()


def video_request(**changes: Any) -> VideoRequest:
    return dataclasses.replace(BASE_REQUEST, **changes)


class Reports:
    """Collect progress reports."""

    def __init__(self) -> None:
        self.seen: list[Progress] = []

    async def __call__(self, progress: Progress) -> None:
        self.seen.append(progress)


async def read_all(output: VideoOutput | Variants) -> bytes:
    assert not isinstance(output, Variants)  # one video asked for, one returned
    return b"".join([chunk async for chunk in output.chunks()])


async def run(veo: VeoProvider, request: VideoRequest = BASE_REQUEST) -> VideoOutput:
    """Start and follow one job."""
    output = await veo.follow(await veo.start(request), request, Reports())
    assert not isinstance(output, Variants)
    return output


async def failure(veo: VeoProvider, request: VideoRequest = BASE_REQUEST) -> PermanentProviderError:
    """Start and follow one job that must fail permanently; return the error."""
    with pytest.raises(PermanentProviderError) as caught:
        await run(veo, request)
    return caught.value


def png(colour: tuple[int, int, int] = (200, 30, 30)) -> InputImage:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), colour).save(buffer, format="PNG")
    return InputImage(buffer.getvalue(), "image/png")


# Results ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.GEMINI], ids=str)
async def test_gemini_success_downloads_a_decodable_mp4(
    fake: FakeVeo, provider: VeoProvider
) -> None:
    veo: VideoProvider = provider  # the protocol is satisfied
    request = video_request(aspect_ratio="9:16", negative_prompt="blur")

    output = await run(provider, request)

    clip = probe_mp4(await read_all(output))
    assert (clip.codec, clip.width, clip.height) == ("h264", 180, 320)
    assert clip.duration == pytest.approx(4.0, abs=0.2)
    assert output.content_type == "video/mp4"
    assert fake.count(Route.DOWNLOAD, Mode.GEMINI) == 1
    assert fake.starts[0].body == {
        "instances": [{"prompt": "a red fox in snow"}],
        "parameters": {
            "durationSeconds": 4, "aspectRatio": "9:16", "resolution": "720p",
            "negativePrompt": "blur",
        },
    }  # fmt: skip
    assert veo.name == "veo"


async def test_inline_bytes(fake: FakeVeo, provider: VeoProvider) -> None:
    fake.enqueue(Script(Outcome.INLINE, polls_until_done=0))

    output = await run(provider, video_request(duration_seconds=6))

    clip = probe_mp4(await read_all(output))
    assert (clip.width, clip.height, clip.frames) == (320, 180, 6 * 8)
    assert fake.count(Route.DOWNLOAD) == 0


@pytest.mark.parametrize("mode", [Mode.VERTEX], ids=str)
async def test_vertex_default_result_is_inline_and_carries_vertex_parameters(
    fake: FakeVeo, provider: VeoProvider
) -> None:
    first, last = png(), png((30, 30, 200))
    request = video_request(
        model="veo-3.1-generate-preview", first_frame=first, last_frame=last, seed=7,
        person_generation="allow_adult", resolution="1080p", duration_seconds=8,
    )  # fmt: skip

    clip = probe_mp4(await read_all(await run(provider, request)))

    assert clip.frames == 8 * 8
    [record] = fake.starts
    assert (record.mode, record.model) == (Mode.VERTEX, "veo-3.1-generate-preview")
    instance, parameters = record.body["instances"][0], record.body["parameters"]
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == first.data
    assert base64.b64decode(instance["lastFrame"]["bytesBase64Encoded"]) == last.data
    assert parameters["seed"] == 7
    assert parameters["generateAudio"] is True
    assert parameters["personGeneration"] == "allow_adult"
    assert parameters["resolution"] == "1080p"


OUTPUT_GCS_URI = "gs://flowboard-renders/veo/"


@pytest.mark.parametrize("delete", [False, True], ids=["kept", "deleted"])
async def test_vertex_output_gcs_uri_is_read_from_cloud_storage(
    fake: FakeVeo, delete: bool
) -> None:
    veo = make_provider(fake, Mode.VERTEX, output_gcs_uri=OUTPUT_GCS_URI, delete_gcs_output=delete)
    try:
        output = await run(veo)
        assert fake.bucket.reads == []  # read lazily, as the caller stores it
        data = await read_all(output)
        assert isinstance(output, ReleasableOutput)
        await output.release()  # the caller does this once its copy is stored
    finally:
        await veo.close()

    assert fake.starts[0].body["parameters"]["storageUri"] == OUTPUT_GCS_URI
    [uri] = fake.bucket.reads
    assert uri.startswith(OUTPUT_GCS_URI) and uri.endswith("/sample_0.mp4")
    assert fake.count(Route.MEDIA, Mode.VERTEX) == 1
    clip = probe_mp4(data)
    assert (clip.codec, clip.width, clip.height, clip.frames) == ("h264", 320, 180, 4 * 8)
    assert output.content_type == "video/mp4"
    assert fake.bucket.deletes == ([uri] if delete else [])
    assert (uri in fake.bucket.objects) is not delete


async def _gcs_output(fake: FakeVeo) -> tuple[VeoProvider, VideoOutput]:
    veo = make_provider(fake, Mode.VERTEX, output_gcs_uri=OUTPUT_GCS_URI, delete_gcs_output=True)
    return veo, await run(veo)


async def test_cloud_storage_read_needs_the_bearer_token(fake: FakeVeo) -> None:
    veo, output = await _gcs_output(fake)
    fake.token = "another-token"  # ours is no longer accepted
    try:
        with pytest.raises(PermanentProviderError) as caught:
            await read_all(output)
        assert isinstance(output, ReleasableOutput)
        await output.release()  # refused too, logged, never raised
    finally:
        await veo.close()

    assert caught.value.code is ErrorCode.PROVIDER_ERROR
    assert "HTTP 401: Invalid Credentials" in caught.value.message
    assert fake.bucket.reads == [] and fake.bucket.deletes == []
    assert TOKEN not in caught.value.message


async def test_cloud_storage_object_gone_is_lost_and_5xx_is_transient(fake: FakeVeo) -> None:
    veo, output = await _gcs_output(fake)
    try:
        fake.fail_next(1, 503, route=Route.MEDIA)
        with pytest.raises(TransientProviderError, match="HTTP 503"):
            await read_all(output)
        fake.bucket.objects.clear()
        with pytest.raises(PermanentProviderError) as caught:
            await read_all(output)
    finally:
        await veo.close()

    assert caught.value.code is ErrorCode.LOST_BY_PROVIDER
    assert "HTTP 404: No such object" in caught.value.message


async def test_cloud_storage_read_cut_short_is_transient(fake: FakeVeo) -> None:
    fake.enqueue(Script(object_padding=8 << 20))
    veo, output = await _gcs_output(fake)
    fake.bucket.cut_after = 2 << 20
    received: list[int] = []

    async def consume() -> None:
        async for chunk in output.chunks():
            received.append(len(chunk))

    try:
        with pytest.raises(TransientProviderError):
            await consume()
        data = await read_all(output)  # the caller's retry reads it again, whole
    finally:
        await veo.close()
    assert 0 < sum(received) < 8 << 20
    assert len(data) > 8 << 20
    assert probe_mp4(data).frames == 4 * 8


async def test_operation_error(fake: FakeVeo, provider: VeoProvider) -> None:
    fake.enqueue(Script(Outcome.ERROR, error_code=3, error_message="Prompt too long."))

    error = await failure(provider)

    assert error.code is ErrorCode.PROVIDER_ERROR
    assert "Prompt too long." in error.message
    assert "code 3" in error.message


async def test_content_filtered(fake: FakeVeo, provider: VeoProvider) -> None:
    reasons = ("Prompt mentions a celebrity.", "Unsafe content.")
    fake.enqueue(Script(Outcome.FILTERED, filtered_count=2, filtered_reasons=reasons))

    error = await failure(provider)

    assert error.code is ErrorCode.CONTENT_FILTERED
    assert "Prompt mentions a celebrity.; Unsafe content." in error.message


async def test_empty_result(fake: FakeVeo, provider: VeoProvider) -> None:
    fake.enqueue(Script(Outcome.EMPTY))

    error = await failure(provider)

    assert error.code is ErrorCode.EMPTY_RESULT
    assert fake.count(Route.DOWNLOAD) == 0


# Transient and permanent call failures -----------------------------------------------


async def test_poll_error_burst_keeps_polling(
    fake: FakeVeo, provider: VeoProvider, caplog: pytest.LogCaptureFixture
) -> None:
    name = await provider.start(BASE_REQUEST)
    fake.fail_next(5, 429, route=Route.POLL)
    fake.fail_next(5, 500, route=Route.POLL)

    output = await provider.follow(name, BASE_REQUEST, Reports())

    assert probe_mp4(await read_all(output)).frames == 4 * 8
    assert fake.count(Route.POLL) == 10 + 2  # ten refused, then "not done" and "done"
    assert fake.polls[name] == 2
    messages = [record.getMessage() for record in caplog.records]
    assert sum("veo polls failing" in message for message in messages) == 1  # once per outage
    assert any("veo polls recovered after 10 failures" in message for message in messages)


async def test_start_rate_limit_burst_starts_one_operation(
    fake: FakeVeo, provider: VeoProvider
) -> None:
    fake.fail_next(3, 429, route=Route.START)

    name = await provider.start(BASE_REQUEST)

    assert [record.operation for record in fake.starts] == [name]
    assert fake.count(Route.START) == 4


async def test_start_gives_up_after_the_attempts(fake: FakeVeo, provider: VeoProvider) -> None:
    fake.fail_next(5, 503, route=Route.START)

    with pytest.raises(TransientProviderError) as caught:
        await provider.start(BASE_REQUEST)

    assert caught.value.code is ErrorCode.UNAVAILABLE
    assert "503" in caught.value.message
    assert fake.count(Route.START) == 5
    assert fake.starts == []


async def test_garbled_poll_answers_are_polled_through(
    fake: FakeVeo, provider: VeoProvider, caplog: pytest.LogCaptureFixture
) -> None:
    fake.enqueue(Script(polls_until_done=1))
    fake.garble_next(2, route=Route.POLL)

    clip = probe_mp4(await read_all(await run(provider)))

    assert clip.frames == 4 * 8
    assert fake.count(Route.POLL) == 2 + 2  # two unreadable answers, then two real ones
    [failing] = [r for r in caplog.records if r.getMessage().startswith("veo polls failing")]
    assert "unreadable" in failing.getMessage()


@pytest.mark.parametrize("mode", [Mode.GEMINI], ids=str)
async def test_dropped_start_is_resent_by_us_not_the_sdk(
    fake: FakeVeo, provider: VeoProvider
) -> None:
    fake.drop_next(1, route=Route.START)
    began = time.monotonic()

    name = await provider.start(BASE_REQUEST)

    # The SDK's own resend would wait at least one second; ours waits at most 0.05 s.
    assert time.monotonic() - began < 0.9
    assert fake.count(Route.START) == 2
    assert [record.operation for record in fake.starts] == [name]


@pytest.mark.parametrize("status", [400, 404, 413])
async def test_request_refused_at_start_is_invalid_request(
    fake: FakeVeo, provider: VeoProvider, status: int
) -> None:
    fake.fail_next(1, status, route=Route.START)

    with pytest.raises(PermanentProviderError) as caught:
        await provider.start(BASE_REQUEST)

    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert f"HTTP {status}" in caught.value.message
    assert "Injected failure." in caught.value.message  # the API's own message
    assert fake.count(Route.START) == 1  # never retried


@pytest.mark.parametrize("status", [401, 403])
async def test_account_refused_at_start_is_provider_error(
    fake: FakeVeo, provider: VeoProvider, status: int
) -> None:
    fake.fail_next(1, status, route=Route.START)

    with pytest.raises(PermanentProviderError) as caught:
        await provider.start(BASE_REQUEST)

    assert caught.value.code is ErrorCode.PROVIDER_ERROR
    assert fake.count(Route.START) == 1


@pytest.mark.parametrize("mode", [Mode.GEMINI], ids=str)
async def test_wrong_api_key_is_permanent_with_the_service_message(
    fake: FakeVeo, mode: Mode
) -> None:
    veo = make_provider(fake, mode, api_key="not-the-key")
    try:
        with pytest.raises(PermanentProviderError) as caught:
            await veo.start(BASE_REQUEST)
    finally:
        await veo.close()

    assert "API key not valid" in caught.value.message
    assert caught.value.code is ErrorCode.PROVIDER_ERROR  # a 400, but the account's fault
    assert "not-the-key" not in caught.value.message
    assert fake.count(Route.START) == 1


async def test_forgotten_operation_is_lost_by_provider(
    fake: FakeVeo, provider: VeoProvider
) -> None:
    name = await provider.start(BASE_REQUEST)
    fake.forget()

    with pytest.raises(PermanentProviderError) as caught:
        await provider.follow(name, BASE_REQUEST, Reports())

    assert caught.value.code is ErrorCode.LOST_BY_PROVIDER
    assert "404" in caught.value.message
    assert fake.polls[name] == 0


# Vertex express mode -------------------------------------------------------------------


async def test_express_mode_completes_a_job_and_cancels_with_the_key(fake: FakeVeo) -> None:
    veo = make_provider(fake, Mode.VERTEX, api_key=API_KEY, project="", access_token="")
    fake.enqueue(Script(polls_until_done=2), Script(Outcome.NEVER))
    request = video_request(seed=11, enhance_prompt=False)
    try:
        output = await run(veo, request)
        data = await read_all(output)
        never = await veo.start(BASE_REQUEST)
        await veo.cancel(never)
    finally:
        await veo.close()

    assert probe_mp4(data).frames == 4 * 8
    first = fake.starts[0]
    assert first.mode is Mode.EXPRESS
    assert first.operation.startswith("publishers/google/models/veo-3.0-generate-001/operations/")
    assert first.body["parameters"]["seed"] == 11
    assert first.body["parameters"]["enhancePrompt"] is False
    assert fake.count(Route.POLL, Mode.EXPRESS) == 3
    assert fake.count(mode=Mode.VERTEX) == 0  # no bearer-token route was used
    assert fake.cancels == [never]


# Deadlines, cancel, resume ------------------------------------------------------------


async def test_deadline_then_cancel(fake: FakeVeo, provider: VeoProvider) -> None:
    fake.enqueue(Script(Outcome.NEVER))
    name = await provider.start(BASE_REQUEST)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await provider.follow(name, BASE_REQUEST, Reports())
    await provider.cancel(name)

    assert fake.cancels == [name]
    assert fake.polls[name] >= 3
    with pytest.raises(PermanentProviderError) as caught:  # the fake now reports it cancelled
        await provider.follow(name, BASE_REQUEST, Reports())
    assert caught.value.code is ErrorCode.CANCELLED


async def test_cancel_never_raises(
    fake: FakeVeo, provider: VeoProvider, caplog: pytest.LogCaptureFixture
) -> None:
    name = await provider.start(BASE_REQUEST)
    fake.forget()

    await provider.cancel(name)  # 404: the operation is unknown
    await fake.stop()
    await provider.cancel(name)  # nobody listens

    assert fake.count(Route.CANCEL) == 1
    assert fake.cancels == []
    messages = [record.getMessage() for record in caplog.records]
    assert "veo cancel not available (HTTP 404)" in messages
    assert any(
        message.startswith("veo cancel failed: ClientConnectorError") for message in messages
    )


async def test_resume_with_a_new_provider(fake: FakeVeo, mode: Mode) -> None:
    fake.enqueue(Script(Outcome.INLINE, polls_until_done=2))
    first = make_provider(fake, mode)
    name = await first.start(BASE_REQUEST)
    await first.close()

    second = make_provider(fake, mode)
    try:
        output = await second.follow(name, BASE_REQUEST, Reports())
    finally:
        await second.close()

    assert probe_mp4(await read_all(output)).frames == 4 * 8
    assert len(fake.starts) == 1
    assert fake.polls[name] == 3


async def test_progress_is_estimated_increasing_and_below_100(fake: FakeVeo, mode: Mode) -> None:
    fake.enqueue(Script(Outcome.INLINE, polls_until_done=5))
    veo = make_provider(fake, mode, typical_seconds=0.05)
    reports = Reports()
    try:
        name = await veo.start(BASE_REQUEST)
        await veo.follow(name, BASE_REQUEST, reports)
    finally:
        await veo.close()

    percents = [progress.percent for progress in reports.seen]
    assert len(percents) == 5 == fake.polls[name] - 1  # one per "not done" poll
    assert all(progress.estimated for progress in reports.seen)
    assert all(0 < percent < 100 for percent in percents)
    assert all(earlier < later for earlier, later in itertools.pairwise(percents))


@pytest.mark.parametrize("mode", [Mode.GEMINI], ids=str)
async def test_many_follows_mostly_sleep(fake: FakeVeo, mode: Mode) -> None:
    fake.default_script = Script(Outcome.NEVER)
    veo = make_provider(
        fake, mode, first_poll_seconds=0.05, poll_interval_seconds=0.05, poll_max_seconds=0.2
    )
    try:
        names = await asyncio.gather(*(veo.start(BASE_REQUEST) for _ in range(100)))
        follows = [veo.follow(name, BASE_REQUEST, Reports()) for name in names]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):  # long enough to stay meaningful under load
                await asyncio.gather(*follows)
    finally:
        await veo.close()

    polls = [fake.polls[name] for name in names]
    # Delays of about 0.05, 0.075, 0.11, 0.17, 0.2 … s: under ten polls each, no hot loop.
    assert min(polls) >= 2
    assert max(polls) <= 12


async def test_polls_use_no_worker_thread(
    fake: FakeVeo, provider: VeoProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp's trust_env reads ~/.netrc and the proxy environment in a worker thread on
    # every request: two thread hops per poll, most of a poll's CPU with thousands polling.
    fake.enqueue(Script(Outcome.NEVER))
    name = await provider.start(BASE_REQUEST)  # builds the client (and Vertex credentials)
    loop = asyncio.get_running_loop()
    hops: list[object] = []
    executor = loop.run_in_executor

    def counted(pool: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        hops.append(func)
        return executor(pool, func, *args)

    monkeypatch.setattr(loop, "run_in_executor", counted)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await provider.follow(name, BASE_REQUEST, Reports())

    assert fake.polls[name] >= 3
    assert hops == []


@pytest.mark.parametrize("mode", [Mode.GEMINI], ids=str)
async def test_proxy_from_the_environment_is_read_once(
    fake: FakeVeo, mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake doubles as a plain HTTP proxy: it routes absolute-form requests by path.
    monkeypatch.setenv("http_proxy", fake.base_url)
    fake.enqueue(Script(polls_until_done=2), Script(Outcome.NEVER))
    veo = make_provider(fake, mode, base_url="http://veo.invalid")
    try:
        name = await veo.start(BASE_REQUEST)
        monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # too late: read at build
        output = await veo.follow(name, BASE_REQUEST, Reports())
        await veo.cancel(never := await veo.start(BASE_REQUEST))
    finally:
        await veo.close()

    assert probe_mp4(await read_all(output)).frames == 4 * 8
    assert fake.polls[name] == 3
    assert fake.count(Route.DOWNLOAD) == 1
    assert fake.cancels == [never]


@pytest.mark.parametrize("mode", [Mode.GEMINI], ids=str)
async def test_no_proxy_bypasses_the_proxy(
    fake: FakeVeo, mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nobody listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    veo = make_provider(fake, mode)
    try:
        await run(veo)
    finally:
        await veo.close()

    assert fake.count(Route.DOWNLOAD) == 1


def test_env_proxy_follows_the_url_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    google = "https://generativelanguage.googleapis.com"
    assert env_proxy(google) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain.example:8080")

    assert env_proxy(google) == "http://user:secret@proxy.example:3128"
    assert env_proxy("http://127.0.0.1:8080") == "http://plain.example:8080"
    monkeypatch.setenv("https_proxy", "http://lower.example:3128")  # lower case wins
    assert env_proxy(google) == "http://lower.example:3128"
    monkeypatch.setenv("NO_PROXY", ".googleapis.com")
    assert env_proxy(google) is None


def test_estimate_percent_approaches_but_never_reaches_95() -> None:
    values = [estimate_percent(t, 90.0) for t in (0, 1, 30, 90, 600, 10_000)]

    assert values[0] == 0
    assert all(earlier < later for earlier, later in itertools.pairwise(values))
    assert values[3] == pytest.approx(95 * (1 - 1 / 2.718281828), abs=0.01)
    assert values[-1] <= 95


# Validation ---------------------------------------------------------------------------

_REFUSED: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("aspect", {}, {"aspect_ratio": "1:1"}, "aspect_ratio: must be one of 16:9, 9:16"),
    ("duration", {}, {"duration_seconds": 10}, "duration_seconds: must be one of 4, 6, 8"),
    ("veo3-odd-duration", {}, {"duration_seconds": 5}, "duration_seconds: must be one of 4, 6, 8"),
    ("veo2-duration", {}, {"model": "veo-2.0-generate-001"},
     "duration_seconds: must be one of 5, 6, 7, 8 for veo-2.0-generate-001"),
    ("resolution", {}, {"resolution": "4k"}, "resolution: must be one of 720p, 1080p"),
    ("veo2-1080p", {}, {"model": "veo-2.0-generate-001", "duration_seconds": 5,
                        "resolution": "1080p"}, "resolution: must be one of 720p for veo-2"),
    ("1080p-portrait", {}, {"resolution": "1080p", "aspect_ratio": "9:16"},
     "resolution: 1080p needs aspect_ratio 16:9"),
    ("person", {}, {"person_generation": "everyone"},
     "person_generation: must be one of allow_all, allow_adult, dont_allow"),
    ("last-frame-veo3.0", {}, {"first_frame": png(), "last_frame": png()},
     "last_frame: not supported by veo-3.0-generate-001"),
    ("last-frame-alone", {}, {"model": "veo-3.1-generate-preview", "last_frame": png()},
     "last_frame: needs a first_frame"),
    ("audio-veo2", {}, {"model": "veo-2.0-generate-001", "duration_seconds": 5,
                        "generate_audio": True}, "generate_audio: veo-2.0-generate-001 does not"),
    ("audio-off-gemini", {}, {"generate_audio": False}, "generate_audio: cannot be turned off"),
    ("seed-gemini", {}, {"seed": 7}, "seed: supported in vertex mode only"),
    ("seed-range", {"mode": "vertex"}, {"seed": -1}, "seed: must be between 0 and 4294967295"),
    ("fps", {}, {"fps": 30}, "fps: Veo renders at 24 fps only"),
    ("prompt", {}, {"prompt": "  "}, "prompt: required unless first_frame is given"),
    ("image-type", {}, {"first_frame": InputImage(b"GIF89a", "image/gif")},
     "first_frame: content type must be one of image/png, image/jpeg"),
    ("model", {}, {"model": "imagen-4"}, "model: must be a Veo model"),
    ("no-api-key", {"api_key": ""}, {}, "api_key: providers.veo.api_key is required"),
    ("no-project", {"mode": "vertex", "project": ""}, {},
     "project: providers.veo.project is required"),
    ("gcs-gemini", {"output_gcs_uri": "gs://bkt/p/"}, {}, "output_gcs_uri: needs vertex mode"),
    ("gcs-express", {"mode": "vertex", "project": "", "api_key": API_KEY,
                     "output_gcs_uri": "gs://bkt/p/"}, {}, "output_gcs_uri: needs vertex mode"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("settings_changes", "request_changes", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in _REFUSED],
)
async def test_validate_refuses_before_any_call(
    fake: FakeVeo, settings_changes: dict[str, Any], request_changes: dict[str, Any], expected: str
) -> None:
    changes = dict(settings_changes)
    veo = make_provider(fake, Mode(changes.pop("mode", Mode.GEMINI)), **changes)
    request = video_request(**request_changes)
    try:
        with pytest.raises(InvalidVideoRequest) as caught:
            veo.validate(request)
        with pytest.raises(InvalidVideoRequest):
            await veo.start(request)
    finally:
        await veo.close()

    assert caught.value.code is ErrorCode.INVALID_REQUEST
    assert expected in caught.value.message
    assert fake.requests == []


_ACCEPTED: list[tuple[str, Mode, dict[str, Any]]] = [
    ("veo2-5s", Mode.GEMINI, {"model": "veo-2.0-generate-001", "duration_seconds": 5}),
    ("1080p-audio", Mode.GEMINI, {"resolution": "1080p", "duration_seconds": 8,
                                  "generate_audio": True}),
    ("image-only", Mode.GEMINI, {"prompt": "", "first_frame": png(), "fps": 24}),
    ("vertex-interpolate", Mode.VERTEX, {"model": "veo-3.1-fast-generate-preview",
                                         "first_frame": png(), "last_frame": png(), "seed": 0,
                                         "generate_audio": False}),
    ("vertex-person", Mode.VERTEX, {"person_generation": "dont_allow", "duration_seconds": 6}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "request_changes"), [pytest.param(*case[1:], id=case[0]) for case in _ACCEPTED]
)
async def test_validate_accepts_what_the_model_supports(
    fake: FakeVeo, mode: Mode, request_changes: dict[str, Any]
) -> None:
    veo = make_provider(fake, mode)
    request = video_request(**request_changes)
    try:
        veo.validate(request)
        name = await veo.start(request)
    finally:
        await veo.close()

    assert [record.operation for record in fake.starts] == [name]


@pytest.mark.parametrize("mode", [Mode.GEMINI], ids=str)
async def test_follow_without_credentials_is_refused(fake: FakeVeo, mode: Mode) -> None:
    veo = make_provider(fake, mode, api_key="")
    try:
        with pytest.raises(InvalidVideoRequest, match="api_key"):
            await veo.follow("models/veo-3.0-generate-001/operations/x", BASE_REQUEST, Reports())
    finally:
        await veo.close()
    assert fake.requests == []


# Logs ---------------------------------------------------------------------------------


async def test_logs_are_structured_and_never_hold_secrets(
    fake: FakeVeo, mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(1, 429, route=Route.START)
    fake.fail_next(1, 503, route=Route.POLL)
    fake.enqueue(Script(), Script(Outcome.ERROR), Script(Outcome.NEVER))
    veo = make_provider(fake, mode)
    try:
        name = await veo.start(BASE_REQUEST)
        await read_all(await veo.follow(name, BASE_REQUEST, Reports()))
        await failure(veo)
        await veo.cancel(await veo.start(BASE_REQUEST))
    finally:
        await veo.close()

    assert len(caplog.records) >= 8
    for record in caplog.records:
        rendered = f"{record.getMessage()} {record.__dict__!r}"
        assert API_KEY not in rendered
        assert TOKEN not in rendered
    started = [r for r in caplog.records if r.getMessage() == "veo operation started"]
    assert started[0].__dict__["operation"] == name
    assert started[0].__dict__["job_id"] == "job-1"
    flowboard = [r for r in caplog.records if r.name.startswith("flowboard.providers")]
    assert all("operation" in r.__dict__ or "job_id" in r.__dict__ for r in flowboard)


@pytest.mark.parametrize("mode", [Mode.VERTEX], ids=str)
async def test_polls_keep_to_the_models_schedule(fake: FakeVeo, mode: Mode) -> None:
    fake.enqueue(Script(polls_until_done=2))
    veo = make_provider(
        fake, mode, first_poll_seconds=0.05,
        models={"veo-3.1": {
            "first_poll_seconds": 0.4, "poll_interval_seconds": 0.2, "poll_max_seconds": 0.3,
        }},
    )  # fmt: skip
    try:
        await read_all(await run(veo, video_request(model="veo-3.1-generate-preview")))
    finally:
        await veo.close()

    [start] = fake.arrival_times(Route.START)
    polls = fake.arrival_times(Route.POLL)
    assert len(polls) == 3
    # The model's own first poll (0.4 s, less at most its jitter), not the default 0.05 s;
    # then gaps of at least 0.9 x its interval (the jitter takes off 2 %).
    assert polls[0] - start >= 0.36
    assert all(b - a >= 0.18 for a, b in itertools.pairwise(polls))
