"""The HTTP calls `flowboard run` makes: upload, import, run, follow, cancel, download."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

API = "/api/creative-flowboard"


class RunError(Exception):
    """The server refused a call `flowboard run` needs (the message says which and why)."""


@dataclass
class FlowboardClient:
    """A Flowboard server at `base_url`, called with an optional bearer token."""

    session: aiohttp.ClientSession
    base_url: str
    token: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def absolute(self, url: str) -> str:
        """A URL the server answered (often relative: /media/…) made absolute."""
        return urljoin(self.base_url.rstrip("/") + "/", url)

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = self.absolute(path)
        async with self.session.request(method, url, headers=self._headers(), **kwargs) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise RunError(f"{method} {path}: {resp.status} {_error_text(text)}")
            body: dict[str, Any] = json.loads(text) if text else {}
            return body

    async def upload(self, path: Path) -> str:
        """Upload a local image; its asset id."""
        form = aiohttp.FormData()
        form.add_field("file", await asyncio.to_thread(path.read_bytes), filename=path.name)
        asset = await self._call("POST", f"{API}/assets", data=form)
        return str(asset["id"])

    async def import_flow(self, document: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", f"{API}/flows/import", json=document)

    async def run_flow(self, flow_id: str) -> dict[str, Any]:
        return await self._call("POST", f"{API}/run/{flow_id}")

    async def execution(self, execution_id: str) -> dict[str, Any]:
        return await self._call("GET", f"{API}/executions/{execution_id}")

    async def cancel(self, execution_id: str) -> dict[str, Any]:
        return await self._call("POST", f"{API}/executions/{execution_id}/cancel")

    async def asset(self, asset_id: str) -> dict[str, Any]:
        return await self._call("GET", f"{API}/assets/{asset_id}")

    async def download(self, url: str, target: Path) -> None:
        """Save one output (streamed to a partial file, renamed when whole)."""
        partial = target.with_name(target.name + ".partial")
        async with self.session.get(self.absolute(url), headers=self._media_headers(url)) as resp:
            if resp.status >= 400:
                raise RunError(f"GET {url}: {resp.status}")
            with partial.open("wb") as out:
                async for chunk in resp.content.iter_chunked(1 << 16):
                    out.write(chunk)
        partial.replace(target)

    def _media_headers(self, url: str) -> dict[str, str]:
        # Presigned storage URLs elsewhere must not receive our token.
        same_host = urlsplit(self.absolute(url)).netloc == urlsplit(self.base_url).netloc
        return self._headers() if same_host else {}


def _error_text(text: str) -> str:
    """The server's `error.code: message`, or the body itself."""
    try:
        error = json.loads(text)["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return text[:500]


def output_urls(asset: dict[str, Any]) -> list[str]:
    """Every stored file an asset holds (an image_gen asset has several)."""
    urls = [str(o["url"]) for o in asset.get("outputs") or [] if o.get("url")]
    if not urls and asset.get("url"):
        urls.append(str(asset["url"]))
    return urls
