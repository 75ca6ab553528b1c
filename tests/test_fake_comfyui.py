"""Drive the fake ComfyUI over real HTTP and websockets, as a ComfyUI client would."""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from PIL import Image

from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.comfyui_records import HistoryLag

WORKFLOWS = Path(__file__).parent / "fakes" / "workflows"
T2V_ORDER = ["4", "6", "7", "5", "3", "8", "9", "10"]
Json = dict[str, Any]
WsClient = aiohttp.ClientWebSocketResponse


def workflow(name: str) -> Json:
    """Load one of the fake's API-format workflows."""
    data = json.loads((WORKFLOWS / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    """Return a solid-colour PNG."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(tmp_path / "comfy") as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def receive(ws: WsClient, timeout: float = 10.0) -> Json:
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data = json.loads(message.data)
    assert isinstance(data, dict)
    return data


async def until_done(ws: WsClient, prompt_id: str) -> list[Json]:
    """Read frames until `executing {node: null}` for the prompt; return them all."""
    frames: list[Json] = []
    while True:
        frame = await receive(ws)
        frames.append(frame)
        data = frame["data"]
        if (
            frame["type"] == "executing"
            and data["node"] is None
            and (data["prompt_id"] == prompt_id)
        ):
            return frames


async def drain(ws: WsClient, quiet: float = 0.3) -> list[Json]:
    """Read frames until none arrives for `quiet` seconds."""
    frames: list[Json] = []
    while True:
        try:
            frames.append(await receive(ws, timeout=quiet))
        except TimeoutError:
            return frames


async def post_json(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        assert response.status == 200
        return await response.json()


async def submit(
    session: aiohttp.ClientSession, fake: FakeComfyUI, prompt: Json, client_id: str, **extra: Any
) -> str:
    status, answer = await post_json(
        session, f"{fake.url}/prompt", {"prompt": prompt, "client_id": client_id, **extra}
    )
    assert status == 200, answer
    assert answer["node_errors"] == {}
    return str(answer["prompt_id"])


async def upload(
    session: aiohttp.ClientSession, fake: FakeComfyUI, name: str, data: bytes, **fields: str
) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("image", data, filename=name, content_type="image/png")
    for key, value in fields.items():
        form.add_field(key, value)
    async with session.post(f"{fake.url}/upload/image", data=form) as response:
        return response.status, (await response.json() if response.status == 200 else None)


def decode(path: Path) -> tuple[int, int, int, str, float, Any]:
    """Return frame count, width, height, codec, fps and the first frame (RGB array)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        ctx, rate = stream.codec_context, stream.average_rate
        assert rate is not None
        return len(frames), ctx.width, ctx.height, ctx.name, float(rate), frames[0]


async def fetch_video(
    session: aiohttp.ClientSession, fake: FakeComfyUI, image: Json, dest: Path
) -> Path:
    params = {"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]}
    async with session.get(f"{fake.url}/view", params=params) as response:
        assert response.status == 200
        assert response.content_type == "video/mp4"
        await asyncio.to_thread(dest.write_bytes, await response.read())
    return dest


def types(frames: list[Json]) -> list[str]:
    return [frame["type"] for frame in frames]


async def test_text_to_video_full_run(
    fake: FakeComfyUI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with session.ws_connect(fake.ws_url("alice")) as ws:
        prompt_id = await submit(session, fake, workflow("text_to_video"), "alice")
        frames = await until_done(ws, prompt_id)

    node_frames = {
        "3": ["progress_state", "executing", *["progress"] * 20, "progress_state"],
        "10": ["progress_state", "executing", "executed", "progress_state"],
    }
    expected = ["status", "status", "status", "execution_start", "execution_cached"]
    for node in T2V_ORDER:
        expected += node_frames.get(node, ["progress_state", "executing", "progress_state"])
    expected += ["execution_success", "status", "executing"]
    assert types(frames) == expected
    assert frames[0]["data"] == {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "alice"}
    assert frames[1]["data"]["status"]["exec_info"]["queue_remaining"] == 1
    assert frames[-2]["data"]["status"]["exec_info"]["queue_remaining"] == 0
    assert frames[4]["data"]["nodes"] == []
    running = [f["data"]["node"] for f in frames if f["type"] == "executing"]
    assert running == [*T2V_ORDER, None]

    progress = [f["data"] for f in frames if f["type"] == "progress"]
    assert [p["value"] for p in progress] == list(range(1, 21))
    assert {(p["max"], p["node"], p["prompt_id"]) for p in progress} == {(20, "3", prompt_id)}

    states = [f["data"]["nodes"] for f in frames if f["type"] == "progress_state"]
    assert states[0] == {"4": states[0]["4"]} and states[0]["4"]["state"] == "running"
    assert list(states[-1]) == T2V_ORDER
    assert {n["state"] for n in states[-1].values()} == {"finished"}
    assert states[-1]["3"]["value"] == states[-1]["3"]["max"] == 20

    executed = next(f["data"] for f in frames if f["type"] == "executed")
    assert executed["node"] == "10" and executed["prompt_id"] == prompt_id
    image = executed["output"]["images"][0]
    assert executed["output"]["animated"] == [True]
    assert image["subfolder"] == "video" and image["type"] == "output"
    assert image["filename"] == "flowboard_00001_.mp4"

    history = await get_json(session, f"{fake.url}/history/{prompt_id}")
    entry = history[prompt_id]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"]
    assert entry["outputs"] == {"10": executed["output"]}
    assert entry["prompt"][1] == prompt_id and entry["prompt"][3] == {"client_id": "alice"}
    assert entry["prompt"][4] == ["10"]
    assert [m[0] for m in entry["status"]["messages"]] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]

    count, width, height, codec, fps, _ = await asyncio.to_thread(
        decode, await fetch_video(session, fake, image, tmp_path / "t2v.mp4")
    )
    assert (count, width, height, codec, fps) == (25, 256, 144, "h264", 24.0)


async def test_image_to_video_starts_from_the_uploaded_image(
    fake: FakeComfyUI, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    status, uploaded = await upload(session, fake, "start.png", png((230, 20, 20)))
    assert status == 200
    prompt = workflow("image_to_video")
    prompt["52"]["inputs"]["image"] = uploaded["name"]
    fake.step_progress_state = True
    async with session.ws_connect(fake.ws_url("bob")) as ws:
        prompt_id = await submit(session, fake, prompt, "bob")
        frames = await until_done(ws, prompt_id)
    assert types(frames)[-3:] == ["execution_success", "status", "executing"]
    progress = [f["data"]["value"] for f in frames if f["type"] == "progress"]
    assert progress == list(range(1, 13))
    steps = [i for i, f in enumerate(frames) if f["type"] == "progress"]
    before = [frames[i - 1]["data"]["nodes"]["3"] for i in steps]
    assert [(s["value"], s["max"], s["state"]) for s in before] == [
        (v, 12, "running") for v in range(1, 13)
    ]
    image = next(f["data"] for f in frames if f["type"] == "executed")["output"]["images"][0]
    count, width, height, codec, _fps, first = await asyncio.to_thread(
        decode, await fetch_video(session, fake, image, tmp_path / "i2v.mp4")
    )
    assert (count, width, height, codec) == (33, 256, 148, "h264")
    red, green, blue = np.asarray(first, dtype=float).mean(axis=(0, 1))
    assert red > 180 and green < 70 and blue < 70


async def test_identical_prompt_is_replayed_from_cache(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    prompt = workflow("text_to_video")
    async with session.ws_connect(fake.ws_url("carol")) as ws:
        first_id = await submit(session, fake, prompt, "carol")
        first = await until_done(ws, first_id)
        files = sorted(p.name for p in fake.dirs.output.rglob("*.mp4"))
        second_id = await submit(session, fake, prompt, "carol")
        second = await until_done(ws, second_id)

    cached = next(f["data"] for f in second if f["type"] == "execution_cached")
    assert cached["nodes"] == list(prompt)
    assert "progress" not in types(second)
    assert [f["data"]["node"] for f in second if f["type"] == "executing"] == [None]
    outputs = [f["data"]["output"] for f in (*first, *second) if f["type"] == "executed"]
    assert len(outputs) == 2 and outputs[0] == outputs[1]
    assert (
        sorted(p.name for p in fake.dirs.output.rglob("*.mp4")) == files == ["flowboard_00001_.mp4"]
    )
    history = await get_json(session, f"{fake.url}/history/{second_id}")
    assert history[second_id]["outputs"] == {"10": outputs[0]}


async def test_a_changed_seed_reruns_only_what_depends_on_it(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    prompt = workflow("text_to_video")
    async with session.ws_connect(fake.ws_url("dan")) as ws:
        await until_done(ws, await submit(session, fake, prompt, "dan"))
        prompt["3"]["inputs"]["seed"] = 7
        frames = await until_done(ws, await submit(session, fake, prompt, "dan"))
    cached = next(f["data"] for f in frames if f["type"] == "execution_cached")
    assert cached["nodes"] == ["4", "5", "6", "7"]
    assert [f["data"]["node"] for f in frames if f["type"] == "executing"] == [
        "3",
        "8",
        "9",
        "10",
        None,
    ]
    executed = next(f["data"] for f in frames if f["type"] == "executed")
    assert executed["output"]["images"][0]["filename"] == "flowboard_00002_.mp4"


async def test_upload_names_follow_comfyui_rules(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    red, green, blue = png((255, 0, 0)), png((0, 255, 0)), png((0, 0, 255))
    sent = (red, red, green, blue, green)
    answers = [await upload(session, fake, "x.png", data) for data in sent]
    assert [status for status, _ in answers] == [200] * 5
    assert [a["name"] for _, a in answers] == [
        "x.png",
        "x.png",
        "x (1).png",
        "x (2).png",
        "x (1).png",
    ]
    assert answers[0][1] == {"name": "x.png", "subfolder": "", "type": "input"}
    assert (fake.dirs.input / "x (2).png").read_bytes() == blue
    assert [u.duplicate for u in fake.uploads] == [False, True, False, False, True]

    status, answer = await upload(session, fake, "x.png", blue, overwrite="true")
    assert (status, answer["name"]) == (200, "x.png")
    assert (fake.dirs.input / "x.png").read_bytes() == blue

    status, answer = await upload(session, fake, "y.png", red, subfolder="clips", type="temp")
    assert answer == {"name": "y.png", "subfolder": "clips", "type": "temp"}
    assert (fake.dirs.temp / "clips" / "y.png").read_bytes() == red

    form = aiohttp.FormData()
    form.add_field("subfolder", "nothing-here")
    async with session.post(f"{fake.url}/upload/image", data=form) as response:
        assert response.status == 400


async def test_subfolder_upload_is_loadimage_value(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    _, answer = await upload(session, fake, "start.png", png((9, 9, 9)), subfolder="flow1")
    prompt = workflow("image_to_video")
    prompt["52"]["inputs"]["image"] = f"{answer['subfolder']}/{answer['name']}"
    prompt_id = await submit(session, fake, prompt, "erin")
    async with asyncio.timeout(30):
        entry = await fake.wait_for_history(prompt_id)
    assert entry.status_str == "success"


def _drop_input(node: str, name: str) -> Callable[[Json], None]:
    def change(prompt: Json) -> None:
        del prompt[node]["inputs"][name]

    return change


def _set_input(node: str, name: str, value: Any) -> Callable[[Json], None]:
    def change(prompt: Json) -> None:
        prompt[node]["inputs"][name] = value

    return change


def _set_class(prompt: Json) -> None:
    prompt["9"]["class_type"] = "CreateVideoPlus"


def _remove_output(prompt: Json) -> None:
    del prompt["10"]


@pytest.mark.parametrize(
    ("change", "error_type", "node", "node_error"),
    [
        (_set_class, "invalid_prompt", None, None),
        (_remove_output, "prompt_no_outputs", None, None),
        (
            _drop_input("6", "text"),
            "prompt_outputs_failed_validation",
            "6",
            "required_input_missing",
        ),
        (
            _set_input("5", "width", 99999),
            "prompt_outputs_failed_validation",
            "5",
            "value_bigger_than_max",
        ),
        (
            _set_input("3", "steps", 0),
            "prompt_outputs_failed_validation",
            "3",
            "value_smaller_than_min",
        ),
        (
            _set_input("3", "sampler_name", "warp"),
            "prompt_outputs_failed_validation",
            "3",
            "value_not_in_list",
        ),
        (
            _set_input("3", "latent_image", ["4", 0]),
            "prompt_outputs_failed_validation",
            "3",
            "return_type_mismatch",
        ),
        (
            _set_input("5", "length", "long"),
            "prompt_outputs_failed_validation",
            "5",
            "invalid_input_type",
        ),
    ],
)
async def test_invalid_prompts_are_rejected_with_comfyui_shapes(
    fake: FakeComfyUI,
    session: aiohttp.ClientSession,
    change: Callable[[Json], None],
    error_type: str,
    node: str | None,
    node_error: str | None,
) -> None:
    prompt = workflow("text_to_video")
    change(prompt)
    status, answer = await post_json(
        session, f"{fake.url}/prompt", {"prompt": prompt, "client_id": "v"}
    )
    assert status == 400
    assert set(answer) == {"error", "node_errors"}
    assert set(answer["error"]) == {"type", "message", "details", "extra_info"}
    assert answer["error"]["type"] == error_type
    if node is None:
        assert answer["node_errors"] == {}
    else:
        assert list(answer["node_errors"]) == [node]
        entry = answer["node_errors"][node]
        assert entry["class_type"] == prompt[node]["class_type"]
        assert entry["dependent_outputs"] == ["10"]
        assert [e["type"] for e in entry["errors"]] == [node_error]
        assert set(entry["errors"][0]) == {"type", "message", "details", "extra_info"}
    assert fake.prompts == [] and len(fake.rejected_prompts) == 1
    queue = await get_json(session, f"{fake.url}/queue")
    assert queue == {"queue_running": [], "queue_pending": []}


async def test_missing_prompt_bad_json_and_missing_image(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    status, answer = await post_json(session, f"{fake.url}/prompt", {"client_id": "v"})
    assert status == 400 and answer["error"]["type"] == "no_prompt"
    assert answer["node_errors"] == {}

    async with session.post(f"{fake.url}/prompt", data=b"{not json") as response:
        assert response.status == 500
        assert response.content_type == "text/plain"

    status, answer = await post_json(
        session, f"{fake.url}/prompt", {"prompt": workflow("image_to_video")}
    )
    assert status == 400
    errors = answer["node_errors"]["52"]["errors"]
    assert errors[0]["type"] == "custom_validation_failed"
    assert "example.png" in errors[0]["details"]
    assert fake.prompts == []


async def test_events_go_only_to_the_prompts_client(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    async with (
        session.ws_connect(fake.ws_url("mine")) as mine,
        session.ws_connect(fake.ws_url("other")) as other,
    ):
        await receive(other)  # its own status greeting
        prompt_id = await submit(session, fake, workflow("text_to_video"), "mine")
        assert "execution_success" in types(await until_done(mine, prompt_id))
        seen = await drain(other)
    assert seen and set(types(seen)) == {"status"}
    assert all("sid" not in frame["data"] for frame in seen)
    assert {m.type for m in fake.sent_to("other")} == {"status"}
    assert not any(m.data.get("prompt_id") == prompt_id for m in fake.sent_to("other"))


async def test_interrupt_takes_effect_between_nodes(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    fake.step_delay = 0.03
    async with session.ws_connect(fake.ws_url("int")) as ws:
        prompt_id = await submit(session, fake, workflow("text_to_video"), "int")
        frames = [await receive(ws)]
        while frames[-1]["type"] != "progress":
            frames.append(await receive(ws))
        status, _ = await post_json(session, f"{fake.url}/interrupt", {"prompt_id": "nope"})
        assert status == 200
        status, _ = await post_json(session, f"{fake.url}/interrupt", {})
        assert status == 200
        frames += await until_done(ws, prompt_id)

    assert [f["data"]["value"] for f in frames if f["type"] == "progress"] == list(range(1, 21))
    assert types(frames)[-5:] == [
        "progress",
        "progress_state",
        "execution_interrupted",
        "status",
        "executing",
    ]
    stop = frames[-3]["data"]
    assert (stop["prompt_id"], stop["node_id"], stop["node_type"]) == (prompt_id, "8", "VAEDecode")
    assert stop["executed"] == ["4", "6", "7", "5", "3"]
    assert "execution_success" not in types(frames)
    assert [(i.requested_prompt_id, i.applied) for i in fake.interrupts] == [
        ("nope", False),
        (None, True),
    ]
    entry = (await get_json(session, f"{fake.url}/history/{prompt_id}"))[prompt_id]
    assert entry["status"]["status_str"] == "error" and not entry["status"]["completed"]
    assert entry["outputs"] == {}
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert list(fake.dirs.output.rglob("*.mp4")) == []


async def test_runtime_failure_sends_execution_error(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    fake.fail_node_class("VAEDecode", "Allocation on device", "torch.OutOfMemoryError")
    async with session.ws_connect(fake.ws_url("err")) as ws:
        prompt_id = await submit(session, fake, workflow("text_to_video"), "err")
        frames = await until_done(ws, prompt_id)
    assert types(frames)[-5:] == [
        "progress_state",
        "executing",
        "execution_error",
        "status",
        "executing",
    ]
    assert "execution_success" not in types(frames)
    failure = frames[-3]["data"]
    assert set(failure) >= {
        "prompt_id",
        "node_id",
        "node_type",
        "executed",
        "exception_message",
        "exception_type",
        "traceback",
        "current_inputs",
        "current_outputs",
    }
    assert (failure["node_id"], failure["node_type"]) == ("8", "VAEDecode")
    assert failure["exception_message"] == "Allocation on device"
    assert failure["exception_type"] == "torch.OutOfMemoryError"
    assert failure["executed"] == ["4", "6", "7", "5", "3"]
    assert isinstance(failure["traceback"], list) and set(failure["current_inputs"]) == {
        "samples",
        "vae",
    }
    entry = (await get_json(session, f"{fake.url}/history/{prompt_id}"))[prompt_id]
    assert entry["status"]["status_str"] == "error" and entry["outputs"] == {}
    assert entry["status"]["messages"][-1][0] == "execution_error"


async def test_accept_then_fail_passes_validation_and_fails_at_run_time(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    prompt = workflow("text_to_video")
    prompt["10"]["inputs"]["codec"] = "h265"
    status, answer = await post_json(session, f"{fake.url}/prompt", {"prompt": prompt})
    assert status == 400 and answer["node_errors"]["10"]["errors"][0]["type"] == (
        "value_not_in_list"
    )

    fake.accept_then_fail("SaveVideo", "codec", "h265", "Unsupported codec: h265")
    async with session.ws_connect(fake.ws_url("atf")) as ws:
        prompt_id = await submit(session, fake, prompt, "atf")
        frames = await until_done(ws, prompt_id)
    failure = next(f["data"] for f in frames if f["type"] == "execution_error")
    assert (failure["node_id"], failure["exception_type"]) == ("10", "ValueError")
    assert failure["exception_message"] == "Unsupported codec: h265"
    assert (await fake.wait_for_history(prompt_id)).status_str == "error"


@pytest.mark.parametrize("abrupt", [False, True])
async def test_dropped_socket_leaves_the_prompt_running(
    fake: FakeComfyUI, session: aiohttp.ClientSession, abrupt: bool
) -> None:
    async with session.ws_connect(fake.ws_url("drop")) as ws:
        assert (await receive(ws))["type"] == "status"
        assert fake.drop_websockets_after(6, "drop", abrupt=abrupt) == 1
        prompt_id = await submit(session, fake, workflow("text_to_video"), "drop")
        got = []
        while (message := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
            got.append(json.loads(message.data))
        assert message.type in {
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        }
    assert types(got) == [
        "status",
        "status",
        "execution_start",
        "execution_cached",
        "progress_state",
        "executing",
    ]
    async with asyncio.timeout(30):
        entry = await fake.wait_for_history(prompt_id)
    assert entry.status_str == "success"
    history = await get_json(session, f"{fake.url}/history/{prompt_id}")
    assert history[prompt_id]["outputs"]["10"]["images"][0]["filename"].endswith(".mp4")
    assert fake.ws_connections[0].close_reason == "dropped"


@pytest.mark.parametrize("mode", [HistoryLag.MISSING, HistoryLag.NO_OUTPUTS])
async def test_history_lags_behind_execution_success(
    fake: FakeComfyUI, session: aiohttp.ClientSession, mode: HistoryLag
) -> None:
    fake.history_lag_reads, fake.history_lag_mode = 2, mode
    async with session.ws_connect(fake.ws_url("race")) as ws:
        prompt_id = await submit(session, fake, workflow("text_to_video"), "race")
        assert "execution_success" in types(await until_done(ws, prompt_id))
    url = f"{fake.url}/history/{prompt_id}"
    reads = [await get_json(session, url) for _ in range(3)]
    if mode is HistoryLag.MISSING:
        assert reads[:2] == [{}, {}]
    else:
        assert [r[prompt_id]["outputs"] for r in reads[:2]] == [{}, {}]
    assert "10" in reads[2][prompt_id]["outputs"]


async def test_execution_success_comes_before_the_history_entry(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    fake.history_delay = 0.5
    async with session.ws_connect(fake.ws_url("race")) as ws:
        prompt_id = await submit(session, fake, workflow("text_to_video"), "race")
        frames: list[Json] = []
        while not frames or frames[-1]["type"] != "execution_success":
            frames.append(await receive(ws))
        [executed] = [f for f in frames if f["type"] == "executed"]
        assert executed["data"]["output"]["images"][0]["filename"]  # names the file already
        # As on a real server: not in history yet, still listed as running.
        assert await get_json(session, f"{fake.url}/history/{prompt_id}") == {}
        queue = await get_json(session, f"{fake.url}/queue")
        assert [item[1] for item in queue["queue_running"]] == [prompt_id]
        rest = await until_done(ws, prompt_id)
        assert types(rest)[-1] == "executing"  # executing {node: null} after the entry
    entry = await get_json(session, f"{fake.url}/history/{prompt_id}")
    assert "10" in entry[prompt_id]["outputs"]


async def test_restart_forgets_everything_and_cuts_sockets(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    fake.step_delay = 0.05
    async with session.ws_connect(fake.ws_url("r")) as ws:
        running = await submit(session, fake, workflow("text_to_video"), "r")
        pending = await submit(session, fake, workflow("text_to_video"), "r", prompt_id="p2")
        assert pending == "p2"
        while (await receive(ws))["type"] != "progress":
            pass
        await fake.restart()
        while (message := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            assert json.loads(message.data)["type"] in {"progress", "progress_state"}
    assert fake.ws_connections[0].close_reason == "restart"
    assert await get_json(session, f"{fake.url}/history/{running}") == {}
    assert await get_json(session, f"{fake.url}/history/p2") == {}
    assert await get_json(session, f"{fake.url}/history") == {}
    assert await get_json(session, f"{fake.url}/queue") == {
        "queue_running": [],
        "queue_pending": [],
    }
    await asyncio.sleep(0.2)
    assert list(fake.dirs.output.rglob("*.mp4")) == []
    assert fake.running_prompt_id is None and fake.restarts == 1

    fake.step_delay = 0.0
    async with session.ws_connect(fake.ws_url("r")) as ws:
        assert (await receive(ws))["data"]["sid"] == "r"
        status, answer = await post_json(
            session, f"{fake.url}/prompt", {"prompt": workflow("text_to_video"), "client_id": "r"}
        )
        assert (status, answer["number"]) == (200, 0)
        assert "execution_success" in types(await until_done(ws, answer["prompt_id"]))


async def test_queue_listing_delete_and_clear(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    fake.step_delay = 0.05
    ids = [
        await submit(session, fake, workflow("text_to_video"), "q", prompt_id=f"q{i}")
        for i in range(4)
    ]
    await asyncio.sleep(0.05)
    queue = await get_json(session, f"{fake.url}/queue")
    assert [item[1] for item in queue["queue_running"]] == ["q0"]
    assert [item[1] for item in queue["queue_pending"]] == ["q1", "q2", "q3"]
    assert queue["queue_pending"][0][0] == 1 and queue["queue_pending"][0][3] == {"client_id": "q"}

    async with session.post(f"{fake.url}/queue", json={"delete": ["q2", "q0"]}) as response:
        assert response.status == 200 and await response.read() == b""
    queue = await get_json(session, f"{fake.url}/queue")
    assert [item[1] for item in queue["queue_pending"]] == ["q1", "q3"]
    assert [item[1] for item in queue["queue_running"]] == ["q0"]
    async with session.delete(f"{fake.url}/queue") as response:
        assert response.status == 405
    status, _ = await post_json(session, f"{fake.url}/queue", {"clear": True})
    assert status == 200
    assert (await get_json(session, f"{fake.url}/queue"))["queue_pending"] == []
    assert [(d.delete, d.clear, d.removed) for d in fake.queue_deletes] == [
        (["q2", "q0"], False, ["q2"]),
        ([], True, ["q1", "q3"]),
    ]
    async with asyncio.timeout(30):
        await fake.wait_idle()
    assert fake.history_entry(ids[0]) is not None
    assert all(fake.history_entry(i) is None for i in ids[1:])


async def test_failing_requests_on_demand(
    fake: FakeComfyUI, session: aiohttp.ClientSession
) -> None:
    fake.fail_next_requests(2, status=503)
    statuses = []
    for _ in range(3):
        async with session.get(f"{fake.url}/system_stats") as response:
            statuses.append(response.status)
    assert statuses == [503, 503, 200]

    fake.fail_next_requests(1, status=429, path="/prompt")
    async with session.get(f"{fake.url}/queue") as response:
        assert response.status == 200
    body = {"prompt": workflow("text_to_video"), "client_id": "f"}
    async with session.post(f"{fake.url}/api/prompt", json=body) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "1"
    assert fake.prompts == []
    fake.fail_next_requests(1, status=500)
    async with session.ws_connect(fake.ws_url("f")) as ws:
        assert (await receive(ws))["type"] == "status"
    async with session.post(f"{fake.url}/prompt", json=body) as response:
        assert response.status == 500
    assert [(f.path, f.status) for f in fake.failed_requests] == [
        ("/system_stats", 503),
        ("/system_stats", 503),
        ("/prompt", 429),
        ("/prompt", 500),
    ]


async def test_view_and_api_prefix(fake: FakeComfyUI, session: aiohttp.ClientSession) -> None:
    prompt = copy.deepcopy(workflow("text_to_video"))
    prompt["5"]["inputs"]["length"] = 5
    status, answer = await post_json(
        session, f"{fake.url}/api/prompt", {"prompt": prompt, "client_id": "v", "prompt_id": "same"}
    )
    assert (status, answer["prompt_id"], answer["number"]) == (200, "same", 0)
    async with asyncio.timeout(30):
        await fake.wait_for_history("same")
    history = await get_json(session, f"{fake.url}/api/history/same")
    image = history["same"]["outputs"]["10"]["images"][0]
    view = f"{fake.url}/view"
    cases = [
        ({**image}, 200),
        ({**image, "filename": "nope.mp4"}, 404),
        ({**image, "filename": "../secret.mp4"}, 400),
        ({**image, "subfolder": "../video"}, 400),
        ({**image, "type": "models"}, 400),
    ]
    for params, expected in cases:
        async with session.get(view, params=params) as response:
            assert response.status == expected, params
    stats = await get_json(session, f"{fake.url}/api/system_stats")
    assert stats["system"]["comfyui_version"] == "0.3.64"
    assert "SaveVideo" in await get_json(session, f"{fake.url}/object_info")
    assert (await get_json(session, f"{fake.url}/history"))["same"]["status"]["completed"]


@pytest.mark.parametrize("evicts", [False, True])
async def test_reconnecting_with_the_same_client_id(
    fake: FakeComfyUI, session: aiohttp.ClientSession, evicts: bool
) -> None:
    fake.step_delay, fake.stale_socket_evicts_new = 0.02, evicts
    old = await session.ws_connect(fake.ws_url("same"))
    prompt_id = await submit(session, fake, workflow("text_to_video"), "same")
    while (await receive(old))["type"] != "progress":
        pass
    async with session.ws_connect(fake.ws_url("same")) as new:
        greeting = [await receive(new), await receive(new)]
        assert greeting[0]["data"]["sid"] == "same"
        assert greeting[1] == {"type": "executing", "data": {"node": "3"}}
        await old.close()
        if evicts:
            late = await drain(new, quiet=0.5)
            assert "execution_success" not in types(late)
            assert set(types(late)) <= {"progress"}
        else:
            assert "execution_success" in types(await until_done(new, prompt_id))
    async with asyncio.timeout(30):
        assert (await fake.wait_for_history(prompt_id)).status_str == "success"
    assert [c.client_id for c in fake.ws_connections] == ["same", "same"]
    assert fake.ws_connections[0].close_reason == "client"
