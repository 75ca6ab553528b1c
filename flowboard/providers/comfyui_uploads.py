"""Input images on a ComfyUI server: named by content, uploaded once, forgotten on reconnect."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from flowboard.providers.base import InputImage
from flowboard.providers.comfyui_client import ComfyUIClient, RetryPolicy

IMAGE_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
MAX_REMEMBERED = 1024


def upload_name(image: InputImage) -> str:
    """Name an upload after its bytes: the same image always gets the same name.

    ComfyUI answers "same name, same bytes" with that name, so a retried upload (or one
    from another job) never makes a renamed copy.
    """
    digest = hashlib.sha256(image.data).hexdigest()[:32]
    return f"fb-{digest}{IMAGE_SUFFIXES.get(image.content_type, '.png')}"


@dataclass
class Uploads:
    """The images this process uploaded to one ComfyUI server, by name → LoadImage value.

    kind: ComfyUI's upload type: "temp" (ComfyUI empties that folder each time it starts;
        it has no route to delete an input) or "input" (kept).
    Forgotten on every websocket reconnect: a restarted ComfyUI may have lost its temp
    folder, so the next job uploads again.
    """

    client: ComfyUIClient
    retry: RetryPolicy
    kind: str = "temp"
    _known: OrderedDict[str, str] = field(default_factory=OrderedDict)

    async def value_for(
        self, image: InputImage, extra: dict[str, str], *, again: bool = False
    ) -> str:
        """Return the LoadImage value of `image`, uploading it unless already there."""
        name = upload_name(image)
        if not again and (value := self._known.get(name)) is not None:
            self._known.move_to_end(name)
            return value
        value = await self.retry.call(
            lambda: self.client.upload_image(name, image.data, image.content_type, self.kind),
            extra,
        )
        self._known[name] = value
        while len(self._known) > MAX_REMEMBERED:
            self._known.popitem(last=False)
        return value

    def forget(self) -> None:
        """Forget every upload (the server may have restarted)."""
        self._known.clear()
