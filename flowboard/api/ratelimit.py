"""Per-caller token buckets on the run endpoints: over the limit answers 429 with Retry-After."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiohttp import web

from flowboard.api.endpoint import Endpoint, Handler
from flowboard.api.errors import error_response
from flowboard.api.principal import PRINCIPAL_KEY
from flowboard.auth.identity import Principal
from flowboard.config import RateLimitSettings

_LOGGER = logging.getLogger(__name__)

# Callers whose buckets are kept at once; past it the least recently seen is forgotten.
MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    """One caller's allowance.

    tokens: requests it may make right now (refilled continuously, at most `burst`).
    stamp: monotonic time `tokens` was last brought up to date.
    """

    tokens: float
    stamp: float


def bucket_key(principal: Principal) -> str:
    """The bucket a caller is charged to: its token id, or its org and JWT subject."""
    return f"{principal.method.value}:{principal.org_id}:{principal.subject}"


class RateLimiter:
    """Token buckets per caller, kept in memory, for the handlers marked `rate_limited`."""

    def __init__(
        self,
        settings: RateLimitSettings,
        handlers: Iterable[Handler],
        *,
        max_buckets: int = MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = settings.enabled
        self.rate = settings.run_per_minute / 60.0  # tokens per second
        self.burst = float(settings.burst)
        self.handlers = frozenset(handlers)
        self._max = max_buckets
        self._clock = clock
        # Least recently used first: a bucket idle this long is full, so forgetting it is exact.
        self._idle = self.burst / self.rate
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @classmethod
    def from_endpoints(
        cls, settings: RateLimitSettings, endpoints: Iterable[Endpoint]
    ) -> RateLimiter:
        """A limiter for the endpoints declared `rate_limited`."""
        return cls(settings, (ep.handler for ep in endpoints if ep.rate_limited))

    def applies(self, handler: Handler) -> bool:
        """Whether requests to this route handler are charged."""
        return self.enabled and handler in self.handlers

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Spend one request of `key`: 0.0 when allowed, else the seconds until one is."""
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        self._buckets[key] = bucket  # now the most recently used
        self._evict(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _evict(self, now: float) -> None:
        """Forget buckets idle long enough to be full again, and the oldest past the cap."""
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.stamp < self._idle and len(self._buckets) <= self._max:
                return
            self._buckets.popitem(last=False)


RATE_LIMITS: web.AppKey[RateLimiter] = web.AppKey("rate_limits")


def retry_after(wait: float) -> int:
    """Whole seconds a refused caller should wait (at least one)."""
    return max(1, math.ceil(wait))


@web.middleware
async def ratelimit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Charge a run request to its caller's bucket; refuse it with 429 when the bucket is empty."""
    limiter = request.app[RATE_LIMITS]
    principal = request.get(PRINCIPAL_KEY)
    if principal is None or not limiter.applies(request.match_info.handler):
        return await handler(request)
    wait = limiter.take(bucket_key(principal))
    if wait <= 0:
        return await handler(request)
    seconds = retry_after(wait)
    _LOGGER.info(
        "run request rate limited",
        extra={"org_id": principal.org_id, "subject": principal.subject, "path": request.path},
    )
    return error_response(
        429,
        "rate_limited",
        f"too many run requests: at most {limiter.burst:g} at once and "
        f"{limiter.rate * 60:g} per minute; retry in {seconds} s",
        {"retryAfter": seconds},
        headers={"Retry-After": str(seconds)},
    )
