"""The content key of a generation task: what its output depends on, hashed.

Two tasks with the same key would ask the same provider the same thing: the node type,
the provider (resolved, so a default counts as its name), the node's validated data
(model, prompt, seed, sizes, every parameter) and the SHA-256 of each input's content
— prompt texts, uploaded images, upstream outputs — never their ids or URLs. So a
byte-identical image uploaded again under a new asset id keeps the key, and another
image changes it.

The inputs are those of `runs/inputs.py` `input_plan`, the one description the resolver
reads too (same upstream nodes, same order, same image limit): the key describes what
the provider will get.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowboard.assets.model import AssetType, GeneratedAsset
from flowboard.canvas.model import Node
from flowboard.nodes.kind import GenerationSpec
from flowboard.nodes.registry import NODE_TYPES
from flowboard.runs.inputs import input_plan
from flowboard.runs.port import Job
from flowboard.store.assets import AssetStore

KEY_VERSION = 1
# Node data that names where the work runs, not what it makes: replaced by the
# resolved provider name.
_NOT_OUTPUT = frozenset({"provider"})


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def content_key(node_type: str, provider: str, params: Mapping[str, Any], inputs: list[str]) -> str:
    """The hex SHA-256 of a canonical JSON of everything the output depends on."""
    document = {
        "v": KEY_VERSION,
        "type": node_type,
        "provider": provider,
        "params": {k: v for k, v in params.items() if k not in _NOT_OUTPUT},
        "inputs": inputs,
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _still_hash(asset: GeneratedAsset) -> str | None:
    """The hash of the image the resolver takes from an asset (a video's poster)."""
    stored = asset.storage if asset.type is AssetType.IMAGE else asset.poster
    return stored.sha256 if stored is not None else None


def _generates(node_type: str) -> bool:
    found = NODE_TYPES.get(node_type)
    return found is not None and found.generation is not None


@dataclass
class ContentKeys:
    """Computes content keys from the stored assets a task's inputs come from."""

    assets: AssetStore

    async def key_of(
        self,
        job: Job,
        spec: GenerationSpec,
        data: Any,
        provider: str,
        upstream: Mapping[str, GeneratedAsset] | None = None,
    ) -> str | None:
        """The task's key; None while an input is not known (it cannot be reused then).

        upstream: the output each named upstream node will have (a plan's reused takes),
            instead of its latest one.
        """
        inputs = await self.input_hashes(job, spec, data, upstream or {})
        if inputs is None:
            return None
        params = data.model_dump(mode="json", by_alias=True, exclude_none=True)
        return content_key(job.node.type, provider, params, inputs)

    async def input_hashes(
        self, job: Job, spec: GenerationSpec, data: Any, upstream: Mapping[str, GeneratedAsset]
    ) -> list[str] | None:
        hashes: list[str] = []
        for item in input_plan(job, spec):
            if isinstance(item, str):
                hashes.append("text:" + text_hash(item))
                continue
            found = await self._image_hash(job, item, upstream)
            if found is None:
                return None
            hashes.append("image:" + found)
        for role, asset_id in sorted(spec.references(data).items()):
            asset = await self.assets.get(job.org_id, asset_id)
            found = _still_hash(asset) if asset is not None else None
            if found is None:
                return None
            hashes.append(f"{role}:{found}")
        return hashes

    async def _image_hash(
        self, job: Job, node: Node, upstream: Mapping[str, GeneratedAsset]
    ) -> str | None:
        asset: GeneratedAsset | None
        if node.id in upstream:
            asset = upstream[node.id]
        elif _generates(node.type):
            asset = await self.assets.latest_completed(job.org_id, job.flow.id, node.id)
        else:
            asset_id = node.data.get("assetId")
            asset = await self.assets.get(job.org_id, str(asset_id)) if asset_id else None
        return _still_hash(asset) if asset is not None else None
