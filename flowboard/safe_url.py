"""The one rule for a URL a client can store: `http(s)://host…` or a path under `/media/`.

Such URLs end in a page's `href` / `src` / `poster`, where `javascript:`, `data:`,
`vbscript:` or a protocol-relative `//evil` would run or load what the caller chose.
Browsers forgive a lot (leading spaces and controls are dropped, tabs and newlines inside
removed, `\\` read as `/`), so any of those characters refuses the URL instead of being
cleaned. `flowboard/web/urls.js` applies the same rule to what the page renders.

Stored records read back (`STORED`, db/documents.py) are not checked: one written before
the rule stays readable, and the page leaves its URL out.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, ValidationInfo
from pydantic.alias_generators import to_camel

from flowboard.errors import ErrorCode, InvalidRequest

MEDIA_PREFIX = "/media/"
STORED = "stored_record"  # validation context key of a record read back from the database
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")
_ABSOLUTE = re.compile(r"https?://(?:[^/?#@]*@)?([^/?#@]+)", re.IGNORECASE)
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_DOT = re.compile("%2e", re.IGNORECASE)  # an encoded dot, as in /media/%2e%2e/
_RULE = "http(s) URLs and paths under /media/ only"


class InvalidUrl(InvalidRequest):
    """A URL field breaks the rule (422 `invalid_url`, the message names the field)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem} ({_RULE})", ErrorCode.INVALID_URL)
        self.field = field


def url_problem(url: str, media: bool = True) -> str | None:
    """Why the URL may not be stored, or None when it may (`media`: /media/ paths too)."""
    if _FORBIDDEN.search(url):
        return "holds whitespace, a control character or a backslash"
    if media and url.startswith(MEDIA_PREFIX):
        path = _DOT.sub(".", re.split(r"[?#]", url, maxsplit=1)[0])
        return "leaves /media/" if {".", ".."} & set(path.split("/")) else None
    if _ABSOLUTE.match(url):
        return None
    if url.startswith("//"):
        return "a protocol-relative URL is not allowed"
    scheme = _SCHEME.match(url)
    if scheme:
        return f"scheme {scheme.group(1).lower()!r} is not allowed"
    return "not an absolute http(s) URL" + (" nor a path under /media/" if media else "")


def check_url(url: str, field: str, media: bool = True) -> str:
    """The URL, or InvalidUrl naming `field`."""
    problem = url_problem(url, media)
    if problem is not None:
        raise InvalidUrl(field, problem)
    return url


def _field(info: ValidationInfo) -> str:
    return to_camel(info.field_name or "url")


def _stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get(STORED))


def _page_url(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str) and not _stored(info):
        check_url(value, _field(info))
    return value


def _page_urls(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, list) and not _stored(info):
        for index, url in enumerate(value):
            check_url(url, f"{_field(info)}[{index}]")
    return value


def _endpoint_url(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str) and not _stored(info):
        check_url(value, _field(info), media=False)
    return value


# A URL a page shows (a node's media), a list of them, and an endpoint Flowboard calls.
PageUrl = Annotated[str, AfterValidator(_page_url)]
PageUrls = Annotated[list[str], AfterValidator(_page_urls)]
EndpointUrl = Annotated[str, AfterValidator(_endpoint_url)]
