"""The headers stored media is served with, by Flowboard (`/media/`) or by the bucket."""

from __future__ import annotations

import mimetypes
import posixpath

NOSNIFF = "nosniff"
# Media never runs anything: no scripts, no subresources, a sandboxed origin if opened.
MEDIA_CSP = "default-src 'none'; sandbox"


def content_disposition(key: str, content_type: str | None = None) -> str:
    """Images and videos open inline; anything else downloads, under the key's file name."""
    name = posixpath.basename(key).replace('"', "").replace("\\", "")
    kind = content_type or mimetypes.guess_type(name)[0] or ""
    inline = kind.startswith(("image/", "video/"))
    return f'{"inline" if inline else "attachment"}; filename="{name}"'


def media_headers(key: str) -> dict[str, str]:
    """Served media is never run nor sniffed as anything else, and opens as media only."""
    return {
        "Cache-Control": "private, max-age=3600",
        "X-Content-Type-Options": NOSNIFF,
        "Content-Security-Policy": MEDIA_CSP,
        "Content-Disposition": content_disposition(key),
    }
