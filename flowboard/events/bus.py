"""An event bus on pyee: typed payloads, decorator registration, retried handlers.

Handlers run concurrently as tracked tasks; each is retried with tenacity and one
handler's failure never reaches the others. A handler that gives up is reported
as a `handler.failed` event.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyee import EventEmitter
from tenacity import AsyncRetrying, RetryError, stop_after_attempt, wait_exponential

from flowboard.events.types import EVENT_TYPES, Event, HandlerFailed
from flowboard.tasks import cancel_and_wait

_LOGGER = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]
# Given a handler's error, waits for its cause to pass and returns True (the handler then
# runs again and the attempt does not count), or returns False at once.
Pause = Callable[[BaseException], Awaitable[bool]]
F = TypeVar("F", bound=Callable[..., Awaitable[None]])
_MARK = "_flowboard_events"


def on(event_name: str, *, final: bool = False) -> Callable[[F], F]:
    """Mark a coroutine method as a handler of `event_name` (bound by EventBus.register).

    A final handler sees an event only after every other handler of it has finished
    (succeeded, or given up and been reported), so it can act on the outcome.
    """
    if event_name not in EVENT_TYPES:
        raise ValueError(f"unknown event {event_name!r}")

    def mark(func: F) -> F:
        names: list[tuple[str, bool]] = getattr(func, _MARK, [])
        setattr(func, _MARK, [*names, (event_name, final)])
        return func

    return mark


@dataclass(frozen=True)
class _Listener:
    handler: Handler
    final: bool

    async def __call__(self, event: Event) -> None:
        await self.handler(event)


@dataclass
class EventBus:
    """Deliver typed events to their handlers, retrying each one independently."""

    attempts: int = 3
    backoff_seconds: float = 0.2
    _emitter: EventEmitter = field(default_factory=EventEmitter)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    pause: Pause | None = None

    def listen(self, event_name: str, handler: Handler, final: bool = False) -> Callable[[], None]:
        """Subscribe a handler; return a callable that unsubscribes it."""
        if event_name not in EVENT_TYPES:
            raise ValueError(f"unknown event {event_name!r}")
        listener = _Listener(handler, final)
        self._emitter.add_listener(event_name, listener)
        return lambda: self._emitter.remove_listener(event_name, listener)

    def register(self, owner: object) -> list[Callable[[], None]]:
        """Subscribe every method of `owner` marked with @on."""
        unsubscribers = []
        for _, method in inspect.getmembers(owner, inspect.ismethod):
            for name, final in getattr(method, _MARK, []):
                unsubscribers.append(self.listen(name, method, final))
        return unsubscribers

    def publish(self, event: Event) -> None:
        """Hand the event to every handler of its type in the background; never raises."""
        self._spawn(self.deliver(event), f"event:{event.EVENT}")

    async def deliver(self, event: Event) -> None:
        """Run the event's handlers: the others concurrently, then the final ones."""
        listeners = [x for x in self._emitter.listeners(event.EVENT) if isinstance(x, _Listener)]
        for final in (False, True):
            group = [x for x in listeners if x.final is final]
            if len(group) == 1:  # the usual case: no gather, no extra task
                failures = [await self._attempt(group[0].handler, event)]
            else:
                failures = await asyncio.gather(*(self._attempt(x.handler, event) for x in group))
            for failed in failures:
                if failed is not None:
                    await self.deliver(failed)

    async def drain(self, timeout: float) -> bool:
        """Wait for handlers in flight; True if all finished in time."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=remaining)
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Let handlers finish within the timeout, then cancel the rest (bounded again)."""
        if not await self.drain(timeout):
            _LOGGER.warning("cancelling event handlers", extra={"count": len(self._tasks)})
        # Cancelled handlers get a deadline too: one stuck in a finally must not hold shutdown.
        await cancel_and_wait(set(self._tasks), "event handler", timeout)
        self._emitter.remove_all_listeners()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, handler: Handler, event: Event) -> None:
        """One attempt; an error that `pause` waits out (the database was down) is no attempt."""
        while True:
            try:
                await handler(event)
            except Exception as exc:
                if self.pause is not None and await self.pause(exc):
                    continue  # e.g. the database was down: now back, run it again
                raise
            return

    async def _attempt(self, handler: Handler, event: Event) -> HandlerFailed | None:
        """Run one handler with retries; a HandlerFailed when it gives up."""
        # Not repr(handler): a bound method's repr renders its whole owner, every event.
        name = getattr(handler, "__qualname__", None) or type(handler).__name__
        try:
            # The first attempt runs bare: tenacity's machinery costs more than most
            # handlers, and nearly every call succeeds.
            await self._call(handler, event)
        except Exception as first:
            if self.attempts <= 1:
                return self._gave_up(name, event, first)
            await asyncio.sleep(self.backoff_seconds)
        else:
            return None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts - 1),
            # Attempt k (from 2) waits backoff * 2**(k-1) after it fails, as one policy would.
            wait=wait_exponential(multiplier=2 * self.backoff_seconds, max=30),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    _LOGGER.info(
                        "retrying event handler",
                        extra={
                            "handler": name,
                            "event": event.EVENT,
                            "attempt": attempt.retry_state.attempt_number + 1,
                        },
                    )
                    await self._call(handler, event)
        except RetryError as exc:
            error = exc.last_attempt.exception()
            return self._gave_up(name, event, error)
        return None

    def _gave_up(
        self, name: str, event: Event, error: BaseException | None
    ) -> HandlerFailed | None:
        # The traceback is the only trace of why: a HandlerFailed carries just its text.
        _LOGGER.warning(
            "event handler gave up: %s",
            error,
            exc_info=error,
            extra={"handler": name, "event": event.EVENT, "attempts": self.attempts},
        )
        if isinstance(event, HandlerFailed):
            return None
        return HandlerFailed(name, event, f"{type(error).__name__}: {error}", self.attempts)
