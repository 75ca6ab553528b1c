"""The providers configured for this process, by media kind and name.

Providers are found, not listed: every module (or package) of `flowboard.providers`
whose source assigns a top-level `SPEC` is imported and its `ProviderSpec` used, plus
the specs of the `plugins` modules named in the settings. Only the source is read for
the others, so an implementation module with heavy imports stays unloaded until an
enabled spec's `build` imports it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import pkgutil
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from flowboard.config import ConfigError, Settings
from flowboard.providers.base import (
    ImageProvider,
    InvalidProviderRequest,
    MediaKind,
    VideoProvider,
)
from flowboard.providers.spec import AnyProvider, ProviderContext, ProviderSpec

_LOGGER = logging.getLogger(__name__)
CLOSE_DEADLINE_SECONDS = 5.0
_DECLARES_SPEC = re.compile(r"^SPEC\s*[:=]", re.MULTILINE)
_PACKAGE = "flowboard.providers"


class UnknownProvider(InvalidProviderRequest):
    """A node names a provider that does not exist, is not configured, or lacks the kind."""


def _source_of(name: str) -> str:
    """The module's source, read by its loader without running it ("" when it has none).

    The loader knows where the source is: beside the package, or in the one-file binary,
    which bundles this package's sources for this check (scripts/build-binary).
    """
    try:
        spec = importlib.util.find_spec(name)
        loader = spec.loader if spec is not None else None
        get_source = getattr(loader, "get_source", None)
        return (get_source(name) or "") if get_source is not None else ""
    except (ImportError, OSError):
        return ""


def builtin_specs() -> list[ProviderSpec[Any]]:
    """The specs declared by the modules of `flowboard.providers`, in name order."""
    package = importlib.import_module(_PACKAGE)
    found: list[ProviderSpec[Any]] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if _DECLARES_SPEC.search(_source_of(f"{_PACKAGE}.{info.name}")):
            module = importlib.import_module(f"{_PACKAGE}.{info.name}")
            found.append(module.SPEC)
    return found


def plugin_specs(modules: Iterable[str]) -> list[ProviderSpec[Any]]:
    """The specs of plugin modules that declare one (`SPEC`)."""
    specs = (getattr(importlib.import_module(name), "SPEC", None) for name in modules)
    return [spec for spec in specs if isinstance(spec, ProviderSpec)]


def default_of(settings: Settings, kind: MediaKind) -> str:
    """The provider of a node of this kind that names none."""
    if kind is MediaKind.VIDEO:
        return settings.providers.default
    return str(getattr(settings.providers, f"{kind.value}_default", "local"))


@dataclass
class ProviderRegistry:
    """The built providers: `by_kind[kind][name]`, and each kind's default name."""

    defaults: dict[MediaKind, str]
    by_kind: dict[MediaKind, dict[str, AnyProvider]] = field(default_factory=dict)

    @property
    def providers(self) -> dict[str, AnyProvider]:
        """The video providers (the registry's original view, still used by tests)."""
        return self.by_kind.setdefault(MediaKind.VIDEO, {})

    @property
    def default(self) -> str:
        return self.defaults[MediaKind.VIDEO]

    @default.setter
    def default(self, name: str) -> None:
        self.defaults[MediaKind.VIDEO] = name

    def get(self, name: str | None, kind: MediaKind = MediaKind.VIDEO) -> AnyProvider:
        """The provider `name` (or the kind's default) for this kind; UnknownProvider if none."""
        chosen = name or self.defaults.get(kind, "local")
        serving = self.by_kind.get(kind, {})
        provider = serving.get(chosen)
        if provider is None:
            known = ", ".join(sorted(serving)) or "none"
            raise UnknownProvider(
                f"provider {chosen!r} is unknown or not configured for {kind.value}"
                f" (configured: {known})"
            )
        return provider

    def video(self, name: str | None) -> VideoProvider:
        return cast(VideoProvider, self.get(name, MediaKind.VIDEO))

    def image(self, name: str | None) -> ImageProvider:
        return cast(ImageProvider, self.get(name, MediaKind.IMAGE))

    def by_name(self) -> dict[str, AnyProvider]:
        """Each configured provider once (the first object of a name serving several kinds)."""
        found: dict[str, AnyProvider] = {}
        for serving in self.by_kind.values():
            for name, provider in serving.items():
                found.setdefault(name, provider)
        return found

    async def reachability(self, timeout: float = 2.0) -> dict[str, str]:
        """Say, per configured provider, "up" or "down" (or "unchecked" without a probe)."""

        async def probe(check: Callable[[], Awaitable[bool]]) -> str:
            try:
                async with asyncio.timeout(timeout):
                    return "up" if await check() else "down"
            except TimeoutError:
                return "down"

        providers = self.by_name()
        names = sorted(providers)
        checks = [getattr(providers[n], "reachable", None) for n in names]
        found = await asyncio.gather(*(probe(c) for c in checks if c is not None))
        answers = iter(found)
        return {
            n: next(answers) if c is not None else "unchecked"
            for n, c in zip(names, checks, strict=True)
        }

    def add(self, name: str, built: dict[MediaKind, AnyProvider]) -> None:
        for kind, provider in built.items():
            self.by_kind.setdefault(kind, {})[name] = provider

    async def close(self) -> None:
        seen: set[int] = set()
        for serving in self.by_kind.values():
            for provider in serving.values():
                if id(provider) in seen:
                    continue  # one object serving two kinds is closed once
                seen.add(id(provider))
                try:
                    # A provider's connections must not hold shutdown: a deadline each.
                    async with asyncio.timeout(CLOSE_DEADLINE_SECONDS):
                        await provider.close()
                except TimeoutError:
                    _LOGGER.warning(
                        "provider did not close within %.0f s",
                        CLOSE_DEADLINE_SECONDS,
                        extra={"provider": provider.name},
                    )
                except Exception:
                    _LOGGER.exception("closing provider failed", extra={"provider": provider.name})


def _check_tables(settings: Settings, specs: Sequence[ProviderSpec[Any]]) -> None:
    """A `[providers.<name>]` table naming no provider is a typo: refuse to start."""
    names = {spec.name for spec in specs}
    for name in settings.providers.model_extra or {}:
        if name not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"config error: providers.{name}: no such provider (known: {known})")


def fill_registry(
    registry: ProviderRegistry,
    settings: Settings,
    specs: Sequence[ProviderSpec[Any]],
    work_dir: Path,
) -> None:
    """Build every enabled provider of `specs` into `registry` (closed by its owner)."""
    _check_tables(settings, specs)
    context = ProviderContext(settings, work_dir)
    names: set[str] = set()
    for spec in specs:
        if spec.name in names:
            raise ConfigError(f"config error: providers.{spec.name}: declared twice")
        names.add(spec.name)
        configured = spec.configure(settings)
        if not spec.enabled(configured):
            continue
        built = dict(spec.build(configured, context))
        registry.add(spec.name, built)  # before the check below: closed if it fails
        if set(built) != set(spec.media):
            raise ConfigError(f"provider {spec.name!r} built other media kinds than it declares")


@asynccontextmanager
async def open_providers(
    settings: Settings, extra: Sequence[ProviderSpec[Any]] = ()
) -> AsyncIterator[ProviderRegistry]:
    specs = [*builtin_specs(), *plugin_specs(settings.plugins), *extra]
    registry = ProviderRegistry({kind: default_of(settings, kind) for kind in MediaKind})
    try:
        fill_registry(registry, settings, specs, settings.data_path / "tmp")
        yield registry
    finally:
        await registry.close()
