"""ComfyUIProvider against the fake ComfyUI over real HTTP and websockets."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from flowboard import cli
from flowboard.config import ComfyUISettings, ComfyWorkflowSettings, ConfigError, load_settings
from flowboard.providers.base import (
    ErrorCode,
    InputImage,
    InvalidVideoRequest,
    PermanentProviderError,
    Progress,
    TransientProviderError,
    Variants,
    VideoOutput,
    VideoProvider,
    VideoRequest,
)
from flowboard.providers.comfyui import ComfyTiming, ComfyUIProvider, prompt_id_for
from flowboard.providers.comfyui_client import RetryPolicy
from flowboard.providers.comfyui_uploads import upload_name
from flowboard.providers.comfyui_workflow import check_settings
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.comfyui_records import HistoryLag

WORKFLOWS = Path(__file__).parent / "fakes" / "workflows"
T2V = {
    "prompt": "6.text", "negative_prompt": "7.text", "width": "5.width", "height": "5.height",
    "frames": "5.length", "fps": "9.fps", "seed": "3.seed", "output_node": "10",
}  # fmt: skip
I2V = {
    "prompt": "6.text", "negative_prompt": "7.text", "image": "52.image", "width": "50.width",
    "height": "50.height", "frames": "50.length", "fps": "57.fps", "seed": "3.seed",
    "output_node": "58",
}  # fmt: skip
FAST = ComfyTiming(
    retry=RetryPolicy(attempts=4, initial=0.01, maximum=0.05, jitter=0.01),
    history=RetryPolicy(attempts=8, initial=0.02, maximum=0.1, jitter=0.01),
    reconnect=RetryPolicy(initial=0.05, maximum=0.2, jitter=0.02),
    reconcile_seconds=0.5,
    lost_checks=2,
    lost_check_delay=0.1,
    report_interval=0.0,
    request_timeout=5.0,
    connect_timeout=2.0,
)


def text_request(job_id: str = "job-t2v", **changes: Any) -> VideoRequest:
    base = VideoRequest(
        job_id=job_id,
        prompt="a red fox trotting through snow",
        negative_prompt="blurry",
        duration_seconds=1,
        aspect_ratio="16:9",
        resolution="480p",
    )
    return dataclasses.replace(base, **changes)


def png(color: tuple[int, int, int] = (30, 140, 220)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, format="PNG")
    return out.getvalue()


def comfy_settings(url: str, **workflows: dict[str, str]) -> ComfyUISettings:
    """Settings with the fake's two workflows plus any extra ones."""
    table = {
        "t2v": {**T2V, "file": str(WORKFLOWS / "text_to_video.json")},
        "i2v": {**I2V, "file": str(WORKFLOWS / "image_to_video.json")},
        **workflows,
    }
    return ComfyUISettings(
        url=url,
        workflow="t2v",
        workflows={k: ComfyWorkflowSettings.model_validate(v) for k, v in table.items()},
    )


class Reports:
    """Collects progress reports."""

    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, progress: Progress) -> None:
        self.values.append(progress.percent)


async def read_all(output: VideoOutput | Variants) -> bytes:
    assert not isinstance(output, Variants)  # one video asked for, one returned
    return b"".join([chunk async for chunk in output.chunks()])


def decoded_frames(data: bytes) -> int:
    with av.open(io.BytesIO(data), mode="r") as container:
        return len(list(container.decode(video=0)))


async def run(provider: VideoProvider, request: VideoRequest, reports: Reports) -> bytes:
    provider.validate(request)
    prompt_id = await provider.start(request)
    return await read_all(await provider.follow(prompt_id, request, reports))


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(tmp_path / "comfy") as server:
        yield server


@pytest.fixture
async def make_provider(
    fake: FakeComfyUI, tmp_path: Path
) -> AsyncIterator[Callable[..., ComfyUIProvider]]:
    """Build providers on the fake with fast timings; close them all at the end."""
    made: list[ComfyUIProvider] = []

    def build(**kwargs: Any) -> ComfyUIProvider:
        settings = kwargs.pop("settings", None) or comfy_settings(fake.url)
        kwargs.setdefault("timing", FAST)
        provider = ComfyUIProvider(settings, tmp_path / "work", **kwargs)
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.close()


@pytest.fixture
def provider(make_provider: Callable[..., ComfyUIProvider]) -> ComfyUIProvider:
    return make_provider()


async def test_text_to_video_produces_a_decodable_mp4(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    request = text_request()
    data = await run(provider, request, Reports())
    assert decoded_frames(data) > 0
    [sent] = fake.prompts
    assert sent.prompt_id == prompt_id_for(request.job_id)
    assert sent.client_id == provider.client_id
    nodes = sent.prompt
    assert nodes["6"]["inputs"]["text"] == request.prompt
    assert nodes["7"]["inputs"]["text"] == "blurry"
    assert (nodes["5"]["inputs"]["width"], nodes["5"]["inputs"]["height"]) == (848, 480)
    assert nodes["5"]["inputs"]["length"] == 24 and nodes["9"]["inputs"]["fps"] == 24.0
    assert isinstance(nodes["3"]["inputs"]["seed"], int)


async def test_image_to_video_uploads_the_first_frame(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    request = text_request(
        "job-i2v", workflow="i2v", first_frame=InputImage(png(), "image/png"), fps=16, seed=7
    )
    data = await run(provider, request, Reports())
    assert decoded_frames(data) > 0
    [upload] = fake.uploads
    name = upload_name(InputImage(png(), "image/png"))
    assert (upload.filename, upload.subfolder, upload.type, upload.size) == (
        name,
        "flowboard",
        "temp",  # ComfyUI empties its temp folder at each start: nothing piles up
        len(png()),
    )
    assert (fake.dirs.temp / "flowboard" / name).read_bytes() == png()
    nodes = fake.prompts[0].prompt
    assert nodes["52"]["inputs"]["image"] == f"flowboard/{name} [temp]"
    assert nodes["50"]["inputs"]["length"] == 16 and nodes["3"]["inputs"]["seed"] == 7


async def test_keep_inputs_uploads_to_the_input_folder(
    fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider]
) -> None:
    settings = comfy_settings(fake.url).model_copy(update={"keep_inputs": True})
    provider = make_provider(settings=settings)
    request = text_request("job-keep", workflow="i2v", first_frame=InputImage(png(), "image/png"))
    assert decoded_frames(await run(provider, request, Reports())) > 0
    [upload] = fake.uploads
    assert upload.type == "input"
    assert fake.prompts[0].prompt["52"]["inputs"]["image"] == f"flowboard/{upload.name}"


async def test_the_same_image_is_uploaded_once_per_server(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    for job in ("job-1", "job-2"):
        request = text_request(job, workflow="i2v", first_frame=InputImage(png(), "image/png"))
        assert decoded_frames(await run(provider, request, Reports())) > 0
    other = text_request(
        "job-3", workflow="i2v", first_frame=InputImage(png((9, 9, 9)), "image/png")
    )
    assert decoded_frames(await run(provider, other, Reports())) > 0
    assert len(fake.prompts) == 3
    assert [u.size for u in fake.uploads] == [len(png()), len(png((9, 9, 9)))]


async def test_a_job_costs_one_prompt_and_one_view_call(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    await run(provider, text_request(), Reports())
    assert fake.requests == [("GET", "/ws"), ("POST", "/prompt"), ("GET", "/view")]


async def test_executed_names_the_output_so_history_is_never_read(
    fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider]
) -> None:
    # The history entry comes 30 s after execution_success, and a history read would
    # wait 30 s more: only the `executed` message can end this run in time.
    fake.history_delay = 30.0
    slow_history = RetryPolicy(attempts=3, initial=30.0, maximum=30.0, jitter=0.0)
    provider = make_provider(timing=dataclasses.replace(FAST, history=slow_history))
    request = text_request()
    async with asyncio.timeout(10):
        data = await run(provider, request, Reports())
    assert decoded_frames(data) > 0
    assert fake.history_entry(prompt_id_for(request.job_id)) is None  # not there yet
    assert not [r for r in fake.requests if r[1].startswith(("/history", "/queue"))]


async def test_without_executed_the_output_comes_from_history(
    fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider]
) -> None:
    fake.history_lag_reads, fake.history_lag_mode = 2, HistoryLag.NO_OUTPUTS
    request = text_request()
    prompt_id = await make_provider().start(request)
    other = make_provider(client_id="flowboard-elsewhere")  # gets none of the prompt's events
    data = await read_all(await other.follow(prompt_id, request, Reports()))
    assert decoded_frames(data) > 0
    assert len([r for r in fake.requests if r == ("GET", f"/history/{prompt_id}")]) >= 3


async def test_progress_increases_stays_below_100_and_covers_the_range(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    fake.step_delay = 0.02
    fake.node_delay = 0.01
    reports = Reports()
    await run(provider, text_request(), reports)
    values = reports.values
    assert len(values) >= 10, values
    assert all(b > a for a, b in itertools.pairwise(values)), values
    assert values[0] < 20 and values[-1] >= 85 and max(values) < 100, values


async def test_cached_nodes_count_as_done(fake: FakeComfyUI, provider: ComfyUIProvider) -> None:
    await run(provider, text_request("job-a", seed=1), Reports())
    fake.step_delay = 0.02
    reports = Reports()
    # Only the prompt text changes: the loader, latent and negative prompt come from cache.
    await run(provider, text_request("job-b", seed=1, prompt="a grey wolf"), reports)
    cached = [m for m in fake.sent if m.type == "execution_cached"]
    assert cached[-1].data["nodes"], "the second run reuses cached nodes"
    assert reports.values and reports.values[0] > 0


async def test_same_job_started_twice_queues_one_prompt(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    fake.step_delay = 0.01
    request = text_request()
    first = await provider.start(request)
    again = await provider.start(request)  # pending or running: found in /queue
    assert first == again and len(fake.prompts) == 1
    await read_all(await provider.follow(first, request, Reports()))
    # Resumed in a new process: found in /history, not queued again.
    assert await provider.start(dataclasses.replace(request, resumed=True)) == first
    data = await read_all(await provider.follow(first, request, Reports()))
    assert decoded_frames(data) > 0 and len(fake.prompts) == 1


async def test_validation_error_names_the_node(
    fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider], tmp_path: Path
) -> None:
    graph = json.loads((WORKFLOWS / "text_to_video.json").read_text())
    graph["3"]["inputs"]["steps"] = 20_000  # above KSampler's maximum
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(graph))
    provider = make_provider(settings=comfy_settings(fake.url, bad={**T2V, "file": str(bad)}))
    with pytest.raises(PermanentProviderError) as caught:
        await provider.start(text_request(workflow="bad"))
    assert caught.value.code is ErrorCode.PROVIDER_ERROR
    message = caught.value.message
    assert "node 3" in message and "KSampler" in message and "bigger than max" in message
    assert len(fake.rejected_prompts) == 1 and not fake.prompts


async def test_runtime_error_carries_the_exception_message(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    fake.fail_node_class("VAEDecode", "Allocation on device failed")
    with pytest.raises(PermanentProviderError) as caught:
        await run(provider, text_request(), Reports())
    assert caught.value.code is ErrorCode.PROVIDER_ERROR
    assert caught.value.message == "VAEDecode (node 8): Allocation on device failed"


@pytest.mark.parametrize("abrupt", [False, True], ids=["close", "abort"])
async def test_dropped_websocket_mid_run_still_completes(
    fake: FakeComfyUI, provider: ComfyUIProvider, abrupt: bool
) -> None:
    fake.step_delay = 0.03
    request = text_request()
    prompt_id = await provider.start(request)
    assert fake.drop_websockets_after(6, provider.client_id, abrupt=abrupt) == 1
    reports = Reports()
    data = await read_all(await provider.follow(prompt_id, request, reports))
    assert decoded_frames(data) > 0
    assert len(fake.ws_connections) >= 2 and fake.ws_connections[0].close_reason == "dropped"
    assert fake.ws_connections[-1].messages_sent > 1  # the run's events reached the new socket
    assert reports.values == sorted(set(reports.values))


@pytest.mark.parametrize("lag", list(HistoryLag), ids=str)
async def test_history_race_still_completes(
    fake: FakeComfyUI, provider: ComfyUIProvider, lag: HistoryLag
) -> None:
    fake.history_lag_reads, fake.history_lag_mode = 3, lag
    data = await run(provider, text_request(), Reports())
    assert decoded_frames(data) > 0


async def restart_while_following(
    fake: FakeComfyUI, provider: ComfyUIProvider, prompt_id: str, request: VideoRequest
) -> BaseException | None:
    """Follow the prompt, restart ComfyUI once it runs; return what the follow raised."""
    reports = Reports()
    follow = asyncio.create_task(provider.follow(prompt_id, request, reports))
    await until(lambda: bool(reports.values))
    await fake.restart()
    try:
        await follow
    except PermanentProviderError as exc:
        return exc
    except TransientProviderError as exc:
        return exc
    return None


async def test_comfyui_restart_mid_run_submits_the_prompt_again(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    fake.step_delay = 0.05
    request = text_request("job-i2v", workflow="i2v", first_frame=InputImage(png(), "image/png"))
    prompt_id = await provider.start(request)
    lost = await restart_while_following(fake, provider, prompt_id, request)
    # Transient: the processor records an attempt and follows again.
    assert isinstance(lost, TransientProviderError), lost
    assert lost.code is ErrorCode.LOST_BY_PROVIDER and prompt_id in lost.message
    assert [p.prompt_id for p in fake.prompts] == [prompt_id, prompt_id]  # same id again
    assert len(fake.uploads) == 2  # ComfyUI's temp folder is emptied when it starts
    data = await read_all(await provider.follow(prompt_id, request, Reports()))
    assert decoded_frames(data) > 0 and len(fake.prompts) == 2


async def test_comfyui_restarted_twice_fails_as_lost(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    fake.step_delay = 0.05
    request = text_request()
    prompt_id = await provider.start(request)
    first = await restart_while_following(fake, provider, prompt_id, request)
    assert isinstance(first, TransientProviderError), first
    second = await restart_while_following(fake, provider, prompt_id, request)
    assert isinstance(second, PermanentProviderError), second
    assert second.code is ErrorCode.LOST_BY_PROVIDER and prompt_id in second.message
    assert len(fake.prompts) == 2  # submitted again once, not twice


async def test_cancel_interrupts_and_deletes(fake: FakeComfyUI, provider: ComfyUIProvider) -> None:
    fake.step_delay = 0.05
    request = text_request()
    prompt_id = await provider.start(request)
    follow = asyncio.create_task(provider.follow(prompt_id, request, Reports()))
    await until(lambda: fake.running_prompt_id == prompt_id)
    await provider.cancel(prompt_id)
    assert [d.delete for d in fake.queue_deletes] == [[prompt_id]]
    assert fake.interrupts[-1].requested_prompt_id == prompt_id and fake.interrupts[-1].applied
    with pytest.raises(PermanentProviderError) as caught:
        await follow
    assert caught.value.code is ErrorCode.CANCELLED


async def test_cancel_never_raises_when_comfyui_is_gone(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    await fake.stop()
    await provider.cancel(prompt_id_for("job-gone"))


async def test_503_burst_on_prompt_is_retried(fake: FakeComfyUI, provider: ComfyUIProvider) -> None:
    fake.fail_next_requests(3, status=503, path="/prompt")
    data = await run(provider, text_request(), Reports())
    assert decoded_frames(data) > 0
    assert [r.status for r in fake.failed_requests] == [503, 503, 503]
    assert len(fake.prompts) == 1


async def test_new_provider_instance_resumes_a_running_prompt(
    fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider]
) -> None:
    fake.step_delay = 0.03
    request = text_request()
    first = make_provider()
    prompt_id = await first.start(request)
    await first.close()  # Flowboard stops; ComfyUI keeps running the prompt
    second = make_provider()
    assert second.client_id == first.client_id  # same installation: events reach it again
    reports = Reports()
    data = await read_all(await second.follow(prompt_id, request, reports))
    assert decoded_frames(data) > 0 and reports.values and len(fake.prompts) == 1


async def test_follow_without_events_completes_by_reconciling(
    fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider]
) -> None:
    request = text_request()
    prompt_id = await make_provider().start(request)
    other = make_provider(client_id="flowboard-elsewhere")  # gets none of the prompt's events
    data = await read_all(await other.follow(prompt_id, request, Reports()))
    assert decoded_frames(data) > 0
    assert not fake.sent_to("flowboard-elsewhere") or all(
        m.type in ("status", "feature_flags") for m in fake.sent_to("flowboard-elsewhere")
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"workflow": "nope"}, "workflow 'nope'"),
        ({"first_frame": InputImage(b"x", "image/png")}, "first frame"),
        ({"duration_seconds": 0}, "durationSeconds"),
        ({"duration_seconds": 61, "fps": 60}, "durationSeconds"),
        ({"aspect_ratio": "4:3"}, "aspectRatio"),
        ({"resolution": "4k"}, "resolution"),
        ({"workflow": "silent"}, "prompt"),
        ({"workflow": "fixed", "fps": 30}, "fps"),
    ],
)
async def test_validate_refuses_what_the_workflow_cannot_do(
    fake: FakeComfyUI,
    make_provider: Callable[..., ComfyUIProvider],
    changes: dict[str, Any],
    field: str,
) -> None:
    t2v = {**T2V, "file": str(WORKFLOWS / "text_to_video.json")}
    fixed = {k: v for k, v in t2v.items() if k not in ("frames", "fps")}
    silent = {k: v for k, v in t2v.items() if k != "prompt"}
    provider = make_provider(settings=comfy_settings(fake.url, fixed=fixed, silent=silent))
    with pytest.raises(InvalidVideoRequest) as caught:
        provider.validate(text_request(**changes))
    assert field in caught.value.message
    assert caught.value.code is ErrorCode.INVALID_REQUEST


async def test_fixed_length_workflow_needs_no_duration_mapping(
    fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider]
) -> None:
    t2v = {**T2V, "file": str(WORKFLOWS / "text_to_video.json")}
    fixed = {k: v for k, v in t2v.items() if k not in ("frames", "fps")}
    provider = make_provider(settings=comfy_settings(fake.url, fixed=fixed))
    request = text_request(workflow="fixed", duration_seconds=7)  # ignored: the file decides
    data = await run(provider, request, Reports())
    assert fake.prompts[0].prompt["5"]["inputs"]["length"] == 25  # the workflow's own
    assert decoded_frames(data) == 25


async def test_fractional_fps_reaches_a_float_input(
    fake: FakeComfyUI, provider: ComfyUIProvider
) -> None:
    request = text_request(fps=23.976, duration_seconds=2)
    provider.validate(request)
    prompt_id = await provider.start(request)
    nodes = fake.prompts[0].prompt
    assert nodes["9"]["inputs"]["fps"] == 23.976 and nodes["5"]["inputs"]["length"] == 48
    await read_all(await provider.follow(prompt_id, request, Reports()))


async def test_fractional_fps_is_refused_for_an_integer_input(
    fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider], tmp_path: Path
) -> None:
    graph = json.loads((WORKFLOWS / "text_to_video.json").read_text())
    graph["9"]["inputs"]["fps"] = 24  # an INT frame-rate input, as VHS_VideoCombine has
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps(graph))
    provider = make_provider(settings=comfy_settings(fake.url, whole={**T2V, "file": str(whole)}))
    with pytest.raises(InvalidVideoRequest) as caught:
        provider.validate(text_request(workflow="whole", fps=29.97))
    assert "fps" in caught.value.message and "29.97" in caught.value.message
    provider.validate(text_request(workflow="whole", fps=30))


@pytest.mark.parametrize(
    ("mapping", "setting", "problem"),
    [
        ({"output_node": "99"}, "output_node", "node 99 is not in the workflow"),
        ({"prompt": "99.text"}, "prompt", "node 99 is not in the workflow"),
        ({"prompt": "6.words"}, "prompt", "no input 'words'"),
        ({"prompt": "6.clip"}, "prompt", "is a link"),
        ({"file": "missing.json"}, "file", "file not found"),
    ],
)
def test_broken_workflow_config_is_refused_at_start_up(
    tmp_path: Path, mapping: dict[str, str], setting: str, problem: str
) -> None:
    table = {**T2V, "file": str(WORKFLOWS / "text_to_video.json"), **mapping}
    settings = ComfyUISettings(
        url="http://127.0.0.1:9", workflows={"t2v": ComfyWorkflowSettings.model_validate(table)}
    )
    with pytest.raises(ConfigError) as caught:
        ComfyUIProvider(settings, tmp_path)
    assert f"providers.comfyui.workflows.t2v.{setting}: " in str(caught.value)
    assert problem in str(caught.value)


def write_config(folder: Path, mapping: dict[str, str], workflow: Path) -> Path:
    """A config file whose default workflow is `workflow`, named relative to the file."""
    (folder / "flows").mkdir(parents=True, exist_ok=True)
    if workflow.exists():
        (folder / "flows" / workflow.name).write_bytes(workflow.read_bytes())
    lines = [
        f'data_dir = "{folder / "data"}"',
        "[providers.comfyui]",
        'url = "http://127.0.0.1:9"',
        "[providers.comfyui.workflows.default]",
        f'file = "flows/{workflow.name}"',  # relative: beside the config file
        *(f'{key} = "{value}"' for key, value in mapping.items()),
    ]
    config = folder / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.mark.parametrize(
    ("workflow", "mapping", "setting"),
    [
        (WORKFLOWS / "missing.json", T2V, "providers.comfyui.workflows.default.file"),
        (WORKFLOWS / "text_to_video.json", {**T2V, "seed": "99.seed"},
         "providers.comfyui.workflows.default.seed"),
    ],
    ids=["missing-file", "seed-on-no-node"],
)  # fmt: skip
def test_serve_stops_with_one_line_naming_the_setting(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    workflow: Path,
    mapping: dict[str, str],
    setting: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths must not resolve against the cwd
    config = write_config(tmp_path / "conf", mapping, workflow)
    assert cli.main(["--config", str(config), "serve", "--port", "0"]) == 2
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line.startswith(f"config error: {setting}: ")
    assert not out and not (tmp_path / "conf" / "data").exists()  # nothing started


def test_workflow_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path / "conf", T2V, WORKFLOWS / "text_to_video.json")
    settings = load_settings(config, environ={})
    check_settings(settings)  # loads and checks the workflow: no error
    file = settings.providers.comfyui.workflows["default"].file
    assert Path(file) == tmp_path / "conf" / "flows" / "text_to_video.json"
