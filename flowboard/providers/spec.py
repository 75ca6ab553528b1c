"""What a provider module declares so the registry can find, configure and build it.

A provider module (or package) of `flowboard.providers` assigns a module-level
`SPEC = ProviderSpec(...)`; the registry reads the sources of the package and imports
only the modules that declare one, so an implementation module that imports a heavy
SDK (google-genai: ~55 MB) is loaded only by the spec's `build`, and only when the
provider is enabled. No list of providers is kept anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from flowboard.config import ConfigError, Settings
from flowboard.providers.base import GenerationProvider, MediaKind

S = TypeVar("S", bound=BaseModel)
AnyProvider = GenerationProvider[Any, Any]


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may use besides its own settings.

    settings: the whole configuration (a provider may share another's credentials).
    work_dir: scratch space for spooled files, on the data disk.
    """

    settings: Settings
    work_dir: Path


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True)
class ProviderSpec(Generic[S]):
    """One provider: its name, settings, when it is on, how it is built, what it serves.

    name: the value of a node's `provider` and of the `[providers.<name>]` table.
    settings_model: validates that table (a typed field of `ProvidersSettings` for the
        built-in ones; any other table is validated here, at start-up).
    build: makes the provider objects, one per media kind served (one object may serve
        several kinds when it implements each kind's request).
    media: the kinds `build` returns.
    enabled: whether the settings make the provider usable (credentials present...).
    """

    name: str
    settings_model: type[S]
    build: Callable[[S, ProviderContext], Mapping[MediaKind, AnyProvider]]
    media: frozenset[MediaKind]
    enabled: Callable[[S], bool] = _always

    def configure(self, settings: Settings) -> S:
        """This provider's settings, validated; ConfigError naming the bad one."""
        raw = getattr(settings.providers, self.name, None)
        if isinstance(raw, self.settings_model):
            return raw
        try:
            return self.settings_model.model_validate(raw or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(["providers", self.name, *(str(p) for p in first["loc"])])
            raise ConfigError(f"config error: {where}: {first['msg']}") from exc
