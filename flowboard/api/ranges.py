"""The `Range` header of a media request, read per RFC 9110 §14.

One range is served; a request for several is answered whole (as nginx does with
`max_ranges 1`: multipart answers are costly to build and a tool of amplification);
a malformed one is ignored, as the RFC asks; an unsatisfiable one gets 416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPEC = re.compile(r"(?:(?P<first>[0-9]+)-(?P<last>[0-9]*)|-(?P<suffix>[0-9]+))")
# Larger than any stored size: a longer number is read as this (the RFC puts no limit on
# digits, and `bytes=99999999999999999999-` is past the end, not malformed).
_HUGE = 10**19


def _number(digits: str) -> int:
    stripped = digits.lstrip("0")
    return _HUGE if len(stripped) > 19 else int(stripped or "0")


class RangeNotSatisfiable(Exception):
    """No byte of the representation is in the requested range."""

    def __init__(self, size: int) -> None:
        super().__init__(f"no requested byte is within the {size} bytes")
        self.size = size


@dataclass(frozen=True)
class ByteRange:
    """Bytes first..last of the representation, both included."""

    first: int
    last: int

    def header(self) -> str:
        """The range as a Range header value naming it exactly."""
        return f"bytes={self.first}-{self.last}"


def requested_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, None for the whole representation; raise when unsatisfiable."""
    if header is None:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in specs.split(",")]
    if len(parts) != 1:
        return None
    match = _SPEC.fullmatch(parts[0])
    if match is None:
        return None
    if match["suffix"] is not None:
        length = _number(match["suffix"])
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - length), size - 1)
    first = _number(match["first"])
    last = _number(match["last"]) if match["last"] else size - 1
    if match["last"] and last < first:
        return None  # invalid: ignored
    if first >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(first, min(last, size - 1))
