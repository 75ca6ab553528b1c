"""image_gen with Gemini image models and Imagen through the real app and google-genai SDK."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import FormData
from PIL import Image

from flowboard.app import create_app
from tests.fakes.google_image import FakeGoogleImages, Route
from tests.fakes.google_image_wire import GEMINI_SIZES, IMAGEN_SIZES, GeminiRequest, Outcome, Script
from tests.servers.app import AppClient, MakeSettings
from tests.servers.waiting import API, wait_execution

Factory = Callable[..., Any]


@pytest.fixture
async def fake() -> AsyncIterator[FakeGoogleImages]:
    async with FakeGoogleImages() as server:
        yield server


def google(fake: FakeGoogleImages, mode: str) -> dict[str, Any]:
    if mode == "gemini":
        return {"mode": "gemini", "api_key": fake.api_key}
    if mode == "express":
        return {"mode": "vertex", "api_key": fake.api_key}
    return {"mode": "vertex", "project": "proj", "access_token": fake.token}


async def app_client(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeGoogleImages, mode: str
) -> AppClient:
    on = {"enabled": True, "base_url": fake.base_url}
    providers: dict[str, Any] = {"veo": google(fake, mode), "gemini_image": on}
    if mode != "gemini":
        providers["imagen"] = on
    settings = make_settings(
        providers=providers,
        server={"shutdown_grace_seconds": 0.1},
        execution={"provider_attempts": 3, "provider_backoff_seconds": 0.02},
    )
    client: AppClient = await aiohttp_client(create_app(settings))
    return client


async def run(
    client: AppClient, data: dict[str, Any], source: dict[str, Any] | None = None
) -> dict[str, Any]:
    nodes = [{"id": "g", "type": "image_gen", "data": data}]
    edges = []
    if source is not None:
        nodes.append(source)
        edges.append({"id": "e1", "source": source["id"], "target": "g"})
    body = {"name": "images", "nodes": nodes, "edges": edges}
    flow = await (await client.post(f"{API}/flows", json=body)).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "g"})
    assert resp.status == 202, await resp.text()
    done = await wait_execution(client, (await resp.json())["id"])
    done["flowId"] = flow["id"]
    return done


async def stored_images(
    client: AppClient, done: dict[str, Any]
) -> list[tuple[dict[str, Any], bytes]]:
    """Each stored file of the run's asset, as recorded, and the bytes its URL serves."""
    asset_id = done["tasks"]["g"]["outputAssetId"]
    asset = await (await client.get(f"{API}/assets/{asset_id}")).json()
    records = asset.get("outputs") or [asset["storage"] | {"url": asset["url"]}]
    found = []
    for record in records:
        fetched = await client.get(record["url"])
        assert fetched.status == 200
        found.append((record, await fetched.read()))
    return found


def check_stored(record: dict[str, Any], data: bytes, size: tuple[int, int], kind: str) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == (kind, size)
    assert (record["width"], record["height"]) == size
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["size"] == len(data)
    assert record["contentType"] == f"image/{kind.lower()}"


@pytest.mark.parametrize("mode", ["gemini", "vertex"])
async def test_gemini_image_count_three(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeGoogleImages, mode: str
) -> None:
    client = await app_client(aiohttp_client, make_settings, fake, mode)
    data = {"prompt": "a lighthouse", "provider": "gemini_image", "count": 3, "aspectRatio": "9:16"}

    done = await run(client, data)

    assert done["tasks"]["g"]["status"] == "COMPLETED", done
    images = await stored_images(client, done)
    assert len(images) == 3
    for record, content in images:
        check_stored(record, content, GEMINI_SIZES["9:16"], "PNG")
    assert len({record["sha256"] for record, _ in images}) == 3
    assert fake.count(Route.GENERATE) == 3
    flow = await (await client.get(f"{API}/flows/{done['flowId']}")).json()
    [output] = [n for n in flow["nodes"] if n["type"] == "generated_asset"]
    assert output["data"]["mediaType"] == "image"
    assert output["data"]["urls"] == [record["url"] for record, _ in images]


@pytest.mark.parametrize("mode", ["vertex", "express"])
async def test_imagen_count_three_jpeg_sizes(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeGoogleImages, mode: str
) -> None:
    client = await app_client(aiohttp_client, make_settings, fake, mode)
    data = {"prompt": "a lighthouse", "provider": "imagen", "count": 3, "aspectRatio": "16:9"}

    done = await run(client, data)

    assert done["tasks"]["g"]["status"] == "COMPLETED", done
    images = await stored_images(client, done)
    assert len(images) == 3
    for record, content in images:
        check_stored(record, content, IMAGEN_SIZES["16:9"], "PNG")
    [call] = fake.calls
    assert call.body["parameters"]["sampleCount"] == 3


async def test_gemini_edit_sends_the_upstream_image(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeGoogleImages
) -> None:
    client = await app_client(aiohttp_client, make_settings, fake, "vertex")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(buffer, format="JPEG")
    form = FormData()
    form.add_field("file", buffer.getvalue(), filename="red.jpg", content_type="image/jpeg")
    uploaded = await (await client.post(f"{API}/assets", data=form)).json()
    source = {"id": "a", "type": "asset", "data": {"assetId": uploaded["id"]}}

    done = await run(client, {"prompt": "make it blue", "provider": "gemini_image"}, source)

    assert done["tasks"]["g"]["status"] == "COMPLETED", done
    [call] = fake.calls
    assert isinstance(call.request, GeminiRequest)
    assert call.request.images == ((buffer.getvalue(), "image/jpeg"),)
    [(record, content)] = await stored_images(client, done)
    check_stored(record, content, GEMINI_SIZES["1:1"], "PNG")


FAILURES = [
    ("gemini_image", Script(Outcome.FILTERED), "content_filtered"),
    ("gemini_image", Script(Outcome.BLOCKED), "content_filtered"),
    ("gemini_image", Script(Outcome.EMPTY), "empty_result"),
    ("imagen", Script(Outcome.FILTERED), "content_filtered"),
    ("imagen", Script(Outcome.BLOCKED), "content_filtered"),
    ("imagen", Script(Outcome.EMPTY), "empty_result"),
]


@pytest.mark.parametrize(("provider", "script", "code"), FAILURES)
async def test_filtered_blocked_and_empty_fail_with_video_codes(
    aiohttp_client: Factory,
    make_settings: MakeSettings,
    fake: FakeGoogleImages,
    provider: str,
    script: Script,
    code: str,
) -> None:
    fake.default_script = script
    client = await app_client(aiohttp_client, make_settings, fake, "vertex")

    done = await run(client, {"prompt": "x", "provider": provider, "count": 2})

    task = done["tasks"]["g"]
    assert (task["status"], task["error"]["code"]) == ("FAILED", code), task


async def test_transient_errors_are_retried_then_complete(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeGoogleImages
) -> None:
    client = await app_client(aiohttp_client, make_settings, fake, "gemini")
    fake.fail_next(1, 429, route=Route.GENERATE)

    done = await run(client, {"prompt": "x", "provider": "gemini_image"})

    task = done["tasks"]["g"]
    assert task["status"] == "COMPLETED", task
    assert task["attempts"] >= 2
    assert fake.count(Route.GENERATE) == 2


async def test_refused_parameters_answer_422_before_any_call(
    aiohttp_client: Factory, make_settings: MakeSettings, fake: FakeGoogleImages
) -> None:
    client = await app_client(aiohttp_client, make_settings, fake, "vertex")
    nodes = [
        {
            "id": "g",
            "type": "image_gen",
            "data": {"prompt": "x", "provider": "imagen", "negativePrompt": "blur"},
        }
    ]
    flow = await (await client.post(f"{API}/flows", json={"name": "n", "nodes": nodes})).json()
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "g"})
    assert resp.status == 422, await resp.text()
    assert "negative_prompt" in (await resp.json())["error"]["message"]
    assert fake.requests == []
