"""The delivery worker: send due outbox deliveries, signed, retrying across restarts.

One named task claims due deliveries (a bounded number at a time), signs each one
afresh (a new webhook-timestamp per attempt, the same webhook-id), and posts it
through the SSRF guard. A 2xx delivers it; 410 Gone disables the subscription; any
other answer or failure is logged in the delivery and retried after the next delay
of `webhooks.retry_schedule_seconds` (with jitter), until `max_attempts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from pymongo.errors import PyMongoError

from flowboard.config import WebhooksSettings
from flowboard.ids import utcnow
from flowboard.models.webhooks import Attempt, Delivery, DeliveryStatus, Subscription
from flowboard.net.ssrf import AllowList, OutboundError, Resolve, UnsafeUrl, safe_request
from flowboard.store.webhooks import WebhookStore
from flowboard.tasks import cancel_and_wait
from flowboard.webhooks import signing

_LOGGER = logging.getLogger(__name__)

CONCURRENCY = 8
JITTER = 0.1
LEASE_MARGIN_SECONDS = 30.0
USER_AGENT = "Flowboard-Webhooks/1"
# 301/302/303 would turn the POST into a GET without its body: not followed.
FOLLOW = frozenset({307, 308})
GONE = 410


def retry_delay(schedule: Sequence[float], failures: int) -> float:
    """The delay after the n-th failed attempt (the last one repeats), plus jitter."""
    base = schedule[min(failures, len(schedule)) - 1]
    return base * (1.0 + random.uniform(0.0, JITTER))


@dataclass
class DeliveryWorker:
    """Sends what the outbox holds; `wake()` when something new was queued."""

    store: WebhookStore
    settings: WebhooksSettings
    allow: AllowList
    resolve: Resolve | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flowboard.webhook-delivery")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace: float) -> None:
        """Let attempts in flight finish within `grace`, then cancel them (due again at once)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        _, pending = await asyncio.wait({task}, timeout=grace)
        if pending:
            _LOGGER.info("cancelling webhook deliveries in flight")
            # Cancelled attempts release their claim (a database write): bounded too.
            await cancel_and_wait(pending, "webhook delivery worker")

    async def _run(self) -> None:
        failing = False
        while not self._stopping:
            self._wake.clear()
            try:
                sent = await self.run_once()
                idle = 0.0 if sent else await self._idle_seconds()
            except Exception as exc:  # a database outage must not kill the worker
                if not failing:
                    _log_failure(exc)
                failing, idle = True, self.settings.poll_seconds
            else:
                if failing:
                    _LOGGER.info("webhook delivery recovered")
                failing = False
            if idle > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle):
                        await self._wake.wait()

    async def _idle_seconds(self) -> float:
        """Until the next delivery is due, at most `poll_seconds`."""
        due = await self.store.next_due()
        poll = self.settings.poll_seconds
        if due is None:
            return poll
        return max(0.0, min(poll, (due - utcnow()).total_seconds()))

    async def run_once(self) -> int:
        """Send the deliveries due now, a bounded number at a time; return how many."""
        now = utcnow()
        lease = timedelta(seconds=self.settings.timeout_seconds + LEASE_MARGIN_SECONDS)
        claimed: list[Delivery] = []
        while len(claimed) < CONCURRENCY and not self._stopping:
            delivery = await self.store.claim_due(now, lease)
            if delivery is None:
                break
            claimed.append(delivery)
        results = await asyncio.gather(*(self._deliver(d) for d in claimed), return_exceptions=True)
        for delivery, result in zip(claimed, results, strict=True):
            if isinstance(result, PyMongoError):
                # the lease brings it back; the endpoint may see it twice (at-least-once)
                _LOGGER.warning("webhook delivery not recorded: %s", result, extra=_ids(delivery))
            elif isinstance(result, BaseException):
                raise result
        return len(claimed)

    async def _deliver(self, delivery: Delivery) -> None:
        subscription = await self.store.subscription_any(delivery.subscription_id)
        if subscription is None or not subscription.enabled:
            outcome = "subscription deleted or disabled"
            await self.store.finish(delivery.id, DeliveryStatus.CANCELLED, outcome, None)
            return
        try:
            attempt = await self._attempt(subscription, delivery)
        except asyncio.CancelledError:
            await self.store.release(delivery.id, utcnow())
            raise
        await self._settle(subscription, delivery, attempt)

    async def _attempt(self, subscription: Subscription, delivery: Delivery) -> Attempt:
        """Post the delivery once; the attempt records the answer or the failure."""
        headers = {
            **signing.headers(
                subscription.secret, delivery.message_id, int(time.time()), delivery.body
            ),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            result = await safe_request(
                "POST",
                subscription.url,
                allow=self.allow,
                data=delivery.body.encode(),
                headers=headers,
                timeout=self.settings.timeout_seconds,
                follow=FOLLOW,
                resolve=self.resolve,
            )
            status_code = result.status
        except OutboundError as exc:
            error = f"refused: {exc}" if isinstance(exc, UnsafeUrl) else str(exc)
        elapsed = int((time.monotonic() - started) * 1000)
        return Attempt(at=utcnow(), status_code=status_code, error=error, duration_ms=elapsed)

    async def _settle(
        self, subscription: Subscription, delivery: Delivery, attempt: Attempt
    ) -> None:
        """Record the attempt: delivered, subscription gone, given up, or retry later."""
        code = attempt.status_code
        failures = len(delivery.attempts) + 1
        extra = {**_ids(delivery), "attempt": failures, "status_code": code}
        if code is not None and 200 <= code < 300:
            await self.store.finish(
                delivery.id, DeliveryStatus.DELIVERED, f"delivered (HTTP {code})", attempt
            )
            _LOGGER.info("webhook delivered", extra=extra)
        elif code == GONE:
            await self._gone(subscription, delivery, attempt)
        elif failures >= self.settings.max_attempts:
            outcome = f"gave up after {failures} attempts"
            await self.store.finish(delivery.id, DeliveryStatus.FAILED, outcome, attempt)
            _LOGGER.warning("webhook delivery given up: %s", attempt.error or code, extra=extra)
        else:
            delay = retry_delay(self.settings.retry_schedule_seconds, failures)
            await self.store.record(delivery.id, attempt, attempt.at + timedelta(seconds=delay))
            _LOGGER.info(
                "webhook attempt failed (%s); next in %.1f s",
                attempt.error or f"HTTP {code}",
                delay,
                extra=extra,
            )

    async def _gone(self, subscription: Subscription, delivery: Delivery, attempt: Attempt) -> None:
        """410 Gone: the receiver wants no more; disable the subscription and its queue."""
        reason = "the endpoint answered 410 Gone"
        await self.store.finish(
            delivery.id, DeliveryStatus.FAILED, f"{reason}; subscription disabled", attempt
        )
        await self.store.disable(subscription.id, reason, attempt.at)
        cancelled = await self.store.cancel_pending(subscription.id, f"cancelled: {reason}")
        _LOGGER.warning(
            "webhook subscription disabled: %s",
            reason,
            extra={**_ids(delivery), "cancelled": cancelled},
        )


def _log_failure(exc: Exception) -> None:
    if isinstance(exc, PyMongoError):
        _LOGGER.warning("webhook delivery pass failed: %s", exc)
    else:
        _LOGGER.exception("webhook delivery pass crashed")


def _ids(delivery: Delivery) -> dict[str, str]:
    return {
        "webhook_id": delivery.subscription_id,
        "delivery_id": delivery.id,
        "event": delivery.event_type.value,
        "org_id": delivery.org_id,
    }
