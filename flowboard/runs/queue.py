"""Per-provider concurrency limits: a job waits for one of its provider's slots.

`[queue] limits` caps the jobs one provider runs at once (Veo's concurrent-request
quota, one ComfyUI server's one-at-a-time queue). A job of a limited provider takes a
slot before its provider is called and gives it back when its provider work ends;
while it waits its task is `QUEUED` with `queuePosition` (1 = next) and an ETA. Order:
interactive jobs (`run-node`) before whole-flow runs and retries, each in arrival order.
The ETA of position p with L slots is ceil(p / L) times the median time a slot of that
provider was held by its last `eta_window` jobs (null until one finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

# What a waiting job is told each time its place changes: position (1 = next), ETA.
Moved = Callable[[int, float | None], Awaitable[None]]


@dataclass(eq=False)
class _Waiter:
    """One job waiting for a slot; `granted` resolves when it holds one."""

    interactive: bool
    seq: int
    granted: asyncio.Future[None]
    moved: asyncio.Event = field(default_factory=asyncio.Event)

    def order(self) -> tuple[int, int]:
        return (0 if self.interactive else 1, self.seq)


@dataclass
class ProviderQueue:
    """One provider's slots and the jobs waiting for them."""

    name: str
    limit: int
    eta_window: int = 20
    running: int = 0
    waiting: list[_Waiter] = field(default_factory=list)
    held: deque[float] = field(default_factory=deque)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def position(self, waiter: _Waiter) -> int:
        return self.waiting.index(waiter) + 1

    def eta(self, position: int) -> float | None:
        if not self.held:
            return None
        rounds = math.ceil(position / self.limit)
        return round(rounds * statistics.median(self.held), 1)

    def _changed(self) -> None:
        for waiter in self.waiting:
            waiter.moved.set()

    def _grant(self) -> None:
        while self.waiting and self.running < self.limit:
            waiter = self.waiting.pop(0)
            if waiter.granted.done():
                continue
            self.running += 1
            waiter.granted.set_result(None)
        self._changed()

    def _release(self, held_seconds: float) -> None:
        self.running -= 1
        self.held.append(held_seconds)
        while len(self.held) > self.eta_window:
            self.held.popleft()
        self._grant()

    @contextlib.asynccontextmanager
    async def slot(self, interactive: bool, moved: Moved) -> AsyncIterator[None]:
        """Hold one slot for the body; report the place in the queue while waiting."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(interactive, next(self._seq), loop.create_future())
        self.waiting.append(waiter)
        self.waiting.sort(key=_Waiter.order)
        self._grant()
        try:
            await self._wait(waiter, moved)
        except BaseException:
            if waiter in self.waiting:
                self.waiting.remove(waiter)
                self._changed()
            elif waiter.granted.done() and not waiter.granted.cancelled():
                self._release_unused()
            raise
        began = time.monotonic()
        try:
            yield
        finally:
            self._release(time.monotonic() - began)

    def _release_unused(self) -> None:
        self.running -= 1
        self._grant()

    async def _wait(self, waiter: _Waiter, moved: Moved) -> None:
        while not waiter.granted.done():
            waiter.moved.clear()
            position = self.position(waiter)
            await moved(position, self.eta(position))
            if waiter.granted.done():
                break
            changed = asyncio.create_task(_wait_moved(waiter), name="queue-moved")
            try:
                await asyncio.wait({waiter.granted, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()


async def _wait_moved(waiter: _Waiter) -> None:
    await waiter.moved.wait()


@dataclass
class ProviderQueues:
    """The queues of the providers that have a limit (others run without one)."""

    limits: dict[str, int]
    eta_window: int = 20
    _queues: dict[str, ProviderQueue] = field(default_factory=dict)

    def get(self, provider: str) -> ProviderQueue | None:
        limit = self.limits.get(provider, 0)
        if limit <= 0:
            return None
        found = self._queues.get(provider)
        if found is None:
            found = self._queues[provider] = ProviderQueue(provider, limit, self.eta_window)
        return found
