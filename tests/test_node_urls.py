"""Node URLs that point inside the network are refused with a 422 and change nothing."""

from __future__ import annotations

import pytest

from tests.servers.app import AppClient
from tests.servers.waiting import API

INTERNAL = [
    "http://127.0.0.1/image.png",
    "http://[::1]/image.png",
    "http://10.0.0.1/image.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://localhost:8080/image.png",
    "file:///etc/passwd",
]


def asset(url: str) -> dict[str, object]:
    return {"id": "img", "type": "asset", "data": {"url": url}}


@pytest.mark.parametrize("url", INTERNAL)
async def test_internal_node_urls_are_refused(client: AppClient, url: str) -> None:
    resp = await client.post(f"{API}/flows", json={"name": "x", "nodes": [asset(url)]})
    assert resp.status == 422
    body = await resp.json()
    expected = "invalid_url" if url.startswith("file:") else "unsafe_url"  # the scheme rule
    assert body["error"]["code"] == expected and body["error"]["message"]
    flow = await (await client.post(f"{API}/flows", json={"name": "ok"})).json()
    added = await client.post(f"{API}/flows/{flow['id']}/nodes", json=asset(url))
    assert added.status == 422
    await client.post(f"{API}/flows/{flow['id']}/nodes", json={"id": "a", "type": "asset"})
    patched = await client.patch(f"{API}/flows/{flow['id']}/nodes/a", json={"data": {"url": url}})
    assert patched.status == 422
    stored = await (await client.get(f"{API}/flows/{flow['id']}")).json()
    assert stored["revision"] == 2 and stored["nodes"][0]["data"] == {"mediaType": "image"}
    listed = await (await client.get(f"{API}/flows")).json()
    assert listed["total"] == 1
