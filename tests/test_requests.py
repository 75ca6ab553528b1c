"""Pathological requests: deep JSON, byte ranges, media headers, big image decodes."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any

from aiohttp import FormData
from PIL import Image

from flowboard.app import create_app
from tests.servers.app import AppClient, MakeSettings

API = "/api/creative-flowboard"


async def test_100000_deep_json_is_400(client: AppClient) -> None:
    flow = await (await client.post(f"{API}/flows", json={"name": "F"})).json()
    deep = b"[" * 100_000 + b"]" * 100_000
    headers = {"Content-Type": "application/json"}
    for method, url in (("POST", f"{API}/flows"), ("PATCH", f"{API}/flows/{flow['id']}")):
        resp = await client.request(method, url, data=deep, headers=headers)
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["code"] == "too_deep"


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(out, "PNG")
    return out.getvalue()


async def _upload(client: AppClient, data: bytes) -> Any:
    form = FormData()
    form.add_field("file", data, filename="in.png", content_type="image/png")
    return await client.post(f"{API}/assets", data=form)


async def test_media_ranges_per_rfc_9110(client: AppClient) -> None:
    data = _png(64, 48)
    asset = await (await _upload(client, data)).json()
    url, size = asset["url"], len(data)
    whole = await client.get(url)
    assert whole.status == 200 and await whole.read() == data
    assert whole.headers["X-Content-Type-Options"] == "nosniff"
    assert whole.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert whole.headers["Content-Disposition"].startswith('inline; filename="')
    cases = {
        "bytes=0-9": (206, data[:10], f"bytes 0-9/{size}"),
        "bytes=-5": (206, data[-5:], f"bytes {size - 5}-{size - 1}/{size}"),
        "bytes=10-": (206, data[10:], f"bytes 10-{size - 1}/{size}"),
        "bytes=0-99999999": (206, data, f"bytes 0-{size - 1}/{size}"),
        "bytes=-0": (416, None, f"bytes */{size}"),
        f"bytes={size}-": (416, None, f"bytes */{size}"),
        "bytes=99999999999999999999-": (416, None, f"bytes */{size}"),  # past any size
        f"bytes=00000000000000000000000{size + 1}-{10**30}": (416, None, f"bytes */{size}"),
        f"bytes=0-{10**30}": (206, data, f"bytes 0-{size - 1}/{size}"),
        f"bytes=-{10**30}": (206, data, f"bytes 0-{size - 1}/{size}"),
        "bytes=0-1,4-5": (200, data, None),  # several ranges: answered whole
        "bytes=9-3": (200, data, None),  # malformed: ignored
        "items=0-3": (200, data, None),
    }
    for header, (status, body, content_range) in cases.items():
        resp = await client.get(url, headers={"Range": header})
        assert resp.status == status, header
        assert resp.headers.get("Content-Range") == content_range, header
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        if body is not None:
            assert await resp.read() == body, header
        else:
            assert (await resp.json())["error"]["code"] == "range_not_satisfiable"


async def test_image_pixel_limit_is_a_setting(
    aiohttp_client: Callable[..., Any], make_settings: MakeSettings
) -> None:
    client: AppClient = await aiohttp_client(
        create_app(make_settings(server={"max_image_pixels": 1000}))
    )
    assert (await _upload(client, _png(20, 50))).status == 201
    refused = await _upload(client, _png(20, 51))
    assert refused.status == 415 and "pixel limit" in (await refused.json())["error"]["message"]


async def test_a_big_image_decodes_off_the_event_loop(client: AppClient) -> None:
    """While a 36-megapixel upload decodes, the loop keeps turning (a ticker's longest
    gap stays a small part of the upload's time; on the loop it would be most of it)."""
    data = _png(6000, 6000)
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    resp = await _upload(client, data)
    took = time.monotonic() - started
    done.set()
    await ticker
    assert resp.status == 201
    assert max(gaps) < took / 2, (max(gaps), took)
