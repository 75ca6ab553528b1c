"""The providers configured for this process, by name."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from flowboard.config import Settings
from flowboard.providers.base import InvalidVideoRequest, VideoProvider
from flowboard.providers.local import LocalProvider

_LOGGER = logging.getLogger(__name__)


class UnknownProvider(InvalidVideoRequest):
    """A node names a provider that does not exist or is not configured."""


@dataclass
class ProviderRegistry:
    default: str
    providers: dict[str, VideoProvider] = field(default_factory=dict)

    def get(self, name: str | None) -> VideoProvider:
        chosen = name or self.default
        provider = self.providers.get(chosen)
        if provider is None:
            known = ", ".join(sorted(self.providers)) or "none"
            raise UnknownProvider(
                f"provider {chosen!r} is unknown or not configured (configured: {known})"
            )
        return provider

    async def reachability(self, timeout: float = 2.0) -> dict[str, str]:
        """Say, per configured provider, "up" or "down" (or "unchecked" without a probe)."""

        async def probe(check: Callable[[], Awaitable[bool]]) -> str:
            try:
                async with asyncio.timeout(timeout):
                    return "up" if await check() else "down"
            except TimeoutError:
                return "down"

        names = sorted(self.providers)
        checks = [getattr(self.providers[n], "reachable", None) for n in names]
        found = await asyncio.gather(*(probe(c) for c in checks if c is not None))
        answers = iter(found)
        return {
            n: next(answers) if c is not None else "unchecked"
            for n, c in zip(names, checks, strict=True)
        }

    async def close(self) -> None:
        for provider in self.providers.values():
            try:
                await provider.close()
            except Exception:
                _LOGGER.exception("closing provider failed", extra={"provider": provider.name})


def _optional_providers(settings: Settings) -> dict[str, VideoProvider]:
    """Veo and ComfyUI, when their settings make them usable.

    Imported only then: google-genai alone adds ~55 MB to the process.
    """
    found: dict[str, VideoProvider] = {}
    veo = settings.providers.veo
    if veo.api_key or veo.project:
        from flowboard.providers.veo import VeoProvider

        # One retry policy per job lives in the processor, where attempts are recorded.
        found["veo"] = VeoProvider(veo, attempts=1)
    if settings.providers.comfyui.url:
        from flowboard.providers.comfyui import ComfyUIProvider

        found["comfyui"] = ComfyUIProvider(settings.providers.comfyui, settings.data_path / "tmp")
    return found


@asynccontextmanager
async def open_providers(settings: Settings) -> AsyncIterator[ProviderRegistry]:
    local = LocalProvider(settings.providers.local, settings.data_path / "tmp")
    registry = ProviderRegistry(settings.providers.default, {"local": local})
    registry.providers.update(_optional_providers(settings))
    try:
        yield registry
    finally:
        await registry.close()
