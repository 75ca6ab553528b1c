"""What a generation node type tells the generic processor: the per-media spec.

The processor (`generation.py`) owns the lifecycle of every generation job; a node
type that generates something declares a `GenerationSpec` on its `NodeType`, saying
only what differs by media: how its request is built from the node's data and inputs,
how the provider's output is stored, and how it is described on the asset and the
output node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from flowboard.assets.model import AssetType, Workflow
from flowboard.providers.base import (
    ErrorCode,
    InputImage,
    MediaKind,
    PermanentProviderError,
)
from flowboard.storage.base import Storage, StoredObject


@dataclass(frozen=True)
class Inputs:
    """What the nodes wired into a generation node give it, in wiring order.

    references: images the node's own data names by asset id, by role.
    checking: built to check a node's parameters before a run (no inputs resolved):
        a missing prompt is not an error then.
    resumed: the job began in an earlier process (the provider may hold it already).
    """

    texts: tuple[str, ...] = ()
    images: tuple[InputImage, ...] = ()
    references: Mapping[str, InputImage] = field(default_factory=dict)
    checking: bool = False
    resumed: bool = False

    def prompt(self, own: str) -> str:
        """The upstream texts and the node's own prompt; INPUT_MISSING if nothing at all."""
        texts = [*self.texts, own] if own else list(self.texts)
        if not texts and not self.images and not self.checking:
            raise PermanentProviderError(
                ErrorCode.INPUT_MISSING, "no prompt: connect a prompt node or set the node's prompt"
            )
        return "\n".join(texts)


@dataclass(frozen=True)
class StoreTarget:
    """Where a job's outputs go: unguessable keys under `prefix`, scratch in `work_dir`."""

    storage: Storage
    work_dir: Path
    asset_id: str
    prefix: str


@dataclass(frozen=True)
class StoredFile:
    """One stored output file and its public URL; width/height for pictures."""

    stored: StoredObject
    url: str
    width: int | None = None
    height: int | None = None

    def to_json(self) -> dict[str, Any]:
        sizes = {"width": self.width, "height": self.height} if self.width else {}
        return {**self.stored.to_json(), **sizes}


@dataclass(frozen=True)
class StoredOutput:
    """What a finished job left in storage: its files (the first is the main one)."""

    files: tuple[StoredFile, ...]
    poster: StoredFile | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def asset_fields(self) -> dict[str, Any]:
        """The asset fields (camelCase) recording these outputs."""
        main = self.files[0]
        fields: dict[str, Any] = {
            "url": main.url,
            "storage": main.to_json(),
            "posterUrl": self.poster.url if self.poster else None,
            "poster": self.poster.to_json() if self.poster else None,
            **self.extra,
        }
        if len(self.files) > 1:
            fields["outputs"] = [f.to_json() | {"url": f.url} for f in self.files]
        return fields


class GenerationSpec(Protocol):
    """The media-specific part of a generation node type.

    media: the kind of provider it asks for (the registry's `by_kind` key).
    asset_type: the type recorded on its assets.
    max_input_images: how many wired images it takes (the first ones).
    """

    @property
    def media(self) -> MediaKind: ...

    @property
    def asset_type(self) -> AssetType: ...

    @property
    def max_input_images(self) -> int: ...

    def provider_of(self, data: Any) -> str | None:
        """The provider the node names (None: the kind's default)."""

    def references(self, data: Any) -> Mapping[str, str]:
        """Asset ids the node's data names, by role (resolved into `Inputs.references`)."""

    def request(self, data: Any, job_id: str, inputs: Inputs) -> Any:
        """The provider request for the node's validated data and resolved inputs."""

    def workflow(self, data: Any, has_image_input: bool) -> Workflow:
        """What kind of generation the asset records."""

    async def store(self, output: Any, target: StoreTarget) -> StoredOutput:
        """Put the provider's output into storage (PermanentProviderError if unusable)."""
