"""A span around every storage write (`put_stream` of each backend).

Imports nothing of `flowboard.storage`, which uses it: while tracing is off a decorated
call costs one check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

from flowboard.tracing.context import active, span

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, Any]])


def traced_put(put: F) -> F:
    """Run a backend's `put_stream(key, chunks, content_type)` in a `storage.put` span."""

    @functools.wraps(put)
    async def wrapper(self: Any, key: str, *args: Any, **kwargs: Any) -> Any:
        if not active():
            return await put(self, key, *args, **kwargs)
        with span("storage.put") as current:
            stored = await put(self, key, *args, **kwargs)
            if current is not None:
                backend = getattr(self.backend, "value", self.backend)
                current.set_attributes(
                    {
                        "storage.backend": str(backend),
                        "storage.key": key,
                        "storage.size": stored.size,
                    }
                )
            return stored

    return cast(F, wrapper)
