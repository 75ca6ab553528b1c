"""GET / and /web/*: the canvas page's files, their cache headers and CSP (no browser)."""

from __future__ import annotations

from flowboard.api.canvas_page import WEB_ROOT, content_security_policy
from flowboard.config import StorageSettings
from tests.servers.app import AppClient, MakeClient

SHIPPED_LIMIT = 300 * 1024  # JS + CSS, uncompressed


async def test_root_serves_the_page_with_a_strict_csp(client: AppClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    html = await resp.text()
    assert '<script type="module" src="/web/main.js"></script>' in html
    policy = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert directives["frame-ancestors"] == "'none'"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_static_files_revalidate_and_unknown_ones_are_404(client: AppClient) -> None:
    resp = await client.get("/web/main.js")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/javascript")
    assert "Content-Security-Policy" in resp.headers
    etag = resp.headers["ETag"]
    again = await client.get("/web/main.js", headers={"If-None-Match": etag})
    assert again.status == 304
    css = await client.get("/web/app.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    for path in ("/web/nope.js", "/web/..%2Fapp.py", "/web/index.html", "/web/%2e%2e%2fconfig.py"):
        missing = await client.get(path)
        assert missing.status == 404, path
        assert (await missing.json())["error"]["code"] == "not_found"


async def test_the_page_needs_no_token_but_the_api_does(client_as: MakeClient) -> None:
    anonymous = await client_as(None)
    assert (await anonymous.get("/")).status == 200
    assert (await anonymous.get("/web/api.js")).status == 200
    assert (await anonymous.get("/api/creative-flowboard/flows")).status == 401


async def test_the_page_is_not_part_of_the_api_document(client: AppClient) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert "/" not in doc["paths"] and not any(p.startswith("/web/") for p in doc["paths"])
    types = doc["x-node-types"]
    assert types["video_gen"]["runnable"] and types["video_gen"]["media"] == "video"
    assert not types["prompt"]["runnable"]
    ref = types["video_gen"]["data"]["$ref"].rsplit("/", 1)[-1]
    assert "durationSeconds" in doc["components"]["schemas"][ref]["properties"]


def test_shipped_js_and_css_stay_small() -> None:
    total = sum(p.stat().st_size for p in WEB_ROOT.iterdir() if p.suffix in {".js", ".css"})
    assert 0 < total < SHIPPED_LIMIT


def test_media_sources_follow_the_storage() -> None:
    local = content_security_policy(StorageSettings())
    assert "media-src 'self';" in local
    cdn = StorageSettings(backend="s3", public_base_url="https://cdn.example.com/media/")
    assert "media-src 'self' https://cdn.example.com;" in content_security_policy(cdn)
    presigned = StorageSettings(backend="s3")
    assert "media-src 'self' https:;" in content_security_policy(presigned)
