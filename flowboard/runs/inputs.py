"""Resolve a generation node's inputs from the nodes wired into it."""

from __future__ import annotations

from dataclasses import dataclass

from flowboard.assets.model import AssetType, GeneratedAsset, StorageInfo
from flowboard.canvas.model import Node
from flowboard.nodes.kind import GenerationSpec, Inputs
from flowboard.nodes.registry import NODE_TYPES
from flowboard.providers.base import ErrorCode, InputImage, PermanentProviderError
from flowboard.runs.port import Job
from flowboard.storage.base import ObjectNotFound, Storage
from flowboard.store.assets import AssetStore

ASSET_SOURCES = frozenset({"asset", "generated_asset"})


def upstream_nodes(job: Job) -> list[Node]:
    ids = [e.source for e in job.flow.edges if e.target == job.node.id]
    return [n for n in (job.flow.node(i) for i in ids) if n is not None]


def _generates(node_type: str) -> bool:
    found = NODE_TYPES.get(node_type)
    return found is not None and found.generation is not None


def is_image_source(node: Node) -> bool:
    """An uploaded/output asset node, or a generation node (its latest output)."""
    return node.type in ASSET_SOURCES or _generates(node.type)


def has_image_input(job: Job) -> bool:
    return any(is_image_source(n) for n in upstream_nodes(job))


def text_of(node: Node) -> str | None:
    """The text a node provides to the nodes it feeds, as its type declares."""
    found = NODE_TYPES.get(node.type)
    return found.text_of(node.data) if found is not None else None


def input_plan(job: Job, spec: GenerationSpec) -> list[str | Node]:
    """A node's inputs in wiring order: each a text, or a node whose image it takes.

    The one description of what a generation reads: the resolver turns it into bytes,
    the content key hashes it.
    """
    plan: list[str | Node] = []
    images = 0
    for node in upstream_nodes(job):
        text = text_of(node)
        if text is not None:
            plan.append(text)
        elif is_image_source(node) and images < spec.max_input_images:
            images += 1
            plan.append(node)
    return plan


def _missing(message: str) -> PermanentProviderError:
    return PermanentProviderError(ErrorCode.INPUT_MISSING, message)


@dataclass
class InputResolver:
    """Turns upstream nodes (and assets the node names) into a generation's Inputs."""

    assets: AssetStore
    storage: Storage
    max_image_bytes: int

    async def inputs(
        self, job: Job, spec: GenerationSpec, data: object, resumed: bool = False
    ) -> Inputs:
        texts: list[str] = []
        images: list[InputImage] = []
        for item in input_plan(job, spec):
            if isinstance(item, str):
                texts.append(item)
            else:
                images.append(await self._image_of(job, item))
        references = {
            role: await self._asset_image(job.org_id, asset_id)
            for role, asset_id in spec.references(data).items()
        }
        return Inputs(tuple(texts), tuple(images), references, resumed=resumed)

    async def _image_of(self, job: Job, node: Node) -> InputImage:
        if _generates(node.type):
            found = await self.assets.latest_completed(job.org_id, job.flow.id, node.id)
            if found is None:
                raise _missing(f"upstream node {node.id!r} has no finished output yet")
            return await self._still(found)
        asset_id = node.data.get("assetId")
        if not asset_id:
            raise _missing(f"upstream node {node.id!r} has no asset")
        return await self._asset_image(job.org_id, str(asset_id))

    async def _asset_image(self, org_id: str, asset_id: str) -> InputImage:
        asset = await self.assets.get(org_id, asset_id)
        if asset is None:
            raise _missing(f"asset {asset_id!r} not found")
        return await self._still(asset)

    async def _still(self, asset: GeneratedAsset) -> InputImage:
        """The image of an image asset (its first), or the poster frame of a video asset."""
        stored: StorageInfo | None = (
            asset.storage if asset.type is AssetType.IMAGE else asset.poster
        )
        if stored is None:
            raise _missing(f"asset {asset.id!r} has no stored image")
        return InputImage(await self._read(stored.key), stored.content_type)

    async def _read(self, key: str) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in self.storage.get_stream(key):
                size += len(chunk)
                if size > self.max_image_bytes:
                    raise _missing(
                        f"input image {key!r} is larger than {self.max_image_bytes} bytes"
                    )
                parts.append(chunk)
        except ObjectNotFound as exc:
            raise _missing(f"stored input {key!r} is missing") from exc
        return b"".join(parts)
