"""Video generation end to end on the embedded default (local provider, local storage)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, FormData
from PIL import Image

from flowboard.keys import DATABASE
from flowboard.media.poster import probe_video
from tests.servers.app import AppClient, SseReader

API = "/api/creative-flowboard"
Reader = Callable[[ClientResponse], SseReader]


def png_bytes(size: tuple[int, int] = (640, 360)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


async def upload_image(client: AppClient) -> dict[str, Any]:
    form = FormData()
    form.add_field("file", png_bytes(), filename="photo.jpg", content_type="image/jpeg")
    resp = await client.post(f"{API}/assets", data=form)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def lighthouse_flow(client: AppClient, **video: Any) -> dict[str, Any]:
    image = await upload_image(client)
    data = {
        "prompt": "a lighthouse at dusk",
        "durationSeconds": 4,
        "aspectRatio": "16:9",
        "resolution": "480p",
        **video,
    }
    resp = await client.post(
        f"{API}/flows",
        json={
            "name": "Lighthouse",
            "nodes": [
                {"id": "img", "type": "asset", "data": {"assetId": image["id"]}},
                {"id": "vid", "type": "video_gen", "position": {"x": 100, "y": 50}, "data": data},
            ],
            "edges": [{"id": "e1", "source": "img", "target": "vid"}],
        },
    )
    assert resp.status == 201, await resp.text()
    flow: dict[str, Any] = await resp.json()
    return flow


async def test_upload_is_sniffed_and_stored(client: AppClient) -> None:
    image = await upload_image(client)
    assert image["storage"]["contentType"] == "image/png"  # content wins over the filename
    assert image["parameters"] == {"width": 640, "height": 360}
    fetched = await client.get(image["url"])
    assert fetched.status == 200 and await fetched.read() == png_bytes()
    form = FormData()
    form.add_field("file", b"not an image at all", filename="x.png", content_type="image/png")
    bad = await client.post(f"{API}/assets", data=form)
    assert bad.status == 415 and (await bad.json())["error"]["code"] == "unsupported_media_type"


async def test_run_node_streams_progress_and_stores_a_real_mp4(
    client: AppClient, sse: Reader, tmp_path: Path
) -> None:
    flow = await lighthouse_flow(client)
    async with client.get(f"{API}/subscribe/{flow['id']}") as stream:
        reader = sse(stream)
        await reader.next()  # snapshot
        resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "vid"})
        assert resp.status == 202
        started = await resp.json()
        assert started["tasks"]["vid"]["status"] == "PROCESSING"
        updates: list[dict[str, Any]] = []
        canvas: list[dict[str, Any]] = []
        while not updates or updates[-1]["status"] not in ("COMPLETED", "FAILED"):
            frame = await reader.next()
            target = updates if frame["event"] == "EXECUTION_UPDATE" else canvas
            target.append(frame["data"])
    assert {u["id"] for u in updates} == {started["id"]}
    tasks = [u["tasks"]["vid"] for u in updates]
    assert tasks[-1]["status"] == "COMPLETED", tasks[-1]
    progress = [t["progress"] for t in tasks if t["status"] == "PROCESSING"]
    assert len(set(progress)) >= 3 and progress == sorted(progress) and progress[-1] < 100
    assert tasks[-1]["progress"] == 100 and tasks[-1]["outputUrl"]

    video = await client.get(tasks[-1]["outputUrl"])
    assert video.status == 200 and video.headers["Content-Type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(await video.read())
    info = probe_video(path)
    assert info.frames > 0 and abs(info.duration_seconds - 4) <= 0.4
    assert abs(info.width / info.height - 16 / 9) < 0.01

    ranged = await client.get(tasks[-1]["outputUrl"], headers={"Range": "bytes=0-99"})
    assert ranged.status == 206 and len(await ranged.read()) == 100

    final = await (await client.get(f"{API}/flows/{flow['id']}")).json()
    outputs = [n for n in final["nodes"] if n["type"] == "generated_asset"]
    assert len(outputs) == 1 and outputs[0]["data"]["url"] == tasks[-1]["outputUrl"]
    assert {"source": "vid", "target": outputs[0]["id"]}.items() <= final["edges"][-1].items()
    assert any(c["revision"] == final["revision"] for c in canvas)

    asset_id = tasks[-1]["outputAssetId"]
    asset = await (await client.get(f"{API}/assets/{asset_id}")).json()
    assert asset["status"] == "COMPLETED" and asset["workflow"] == "image-to-video"
    assert asset["storage"]["size"] == path.stat().st_size and asset["posterUrl"]
    assert asset["operationId"] == f"local:{asset_id}"
    # The job's state on the asset is its task's (stored only there).
    assert (asset["progress"], asset["attempts"]) == (100, tasks[-1]["attempts"]) == (100, 1)
    stored = await client.app[DATABASE].assets.find_one({"_id": asset_id})
    assert stored is not None and not {"progress", "progressEstimated", "attempts"} & set(stored)


async def test_run_node_refuses_what_cannot_run(client: AppClient) -> None:
    flow = await lighthouse_flow(client)
    cases = [
        ({"flowId": flow["id"], "nodeId": "img"}, 422, "invalid_request"),
        ({"flowId": flow["id"], "nodeId": "nope"}, 422, "invalid_request"),
        ({"flowId": "flow_missing", "nodeId": "vid"}, 404, "flow_not_found"),
    ]
    for body, status, code in cases:
        resp = await client.post(f"{API}/run-node", json=body)
        assert resp.status == status
        assert (await resp.json())["error"]["code"] == code
    await client.patch(f"{API}/flows/{flow['id']}/nodes/vid", json={"data": {"provider": "veo"}})
    resp = await client.post(f"{API}/run-node", json={"flowId": flow["id"], "nodeId": "vid"})
    err = await resp.json()
    assert resp.status == 422 and "'veo'" in err["error"]["message"]
    listed = await (await client.get(f"{API}/flows/{flow['id']}/executions")).json()
    assert listed["total"] == 0
