"""Prometheus counters of this process (a registry per app, no global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from flowboard.models.execution import TaskStatus


def _counter(registry: CollectorRegistry, name: str, doc: str) -> Counter:
    return Counter(name, doc, ["node_type"], registry=registry)


@dataclass
class Metrics:
    """Job counters by node type, exposed at /metrics."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.started = _counter(r, "flowboard_jobs_started", "Node runs started")
        self.completed = _counter(r, "flowboard_jobs_completed", "Node runs completed")
        self.failed = _counter(r, "flowboard_jobs_failed", "Node runs failed")
        self.cancelled = _counter(r, "flowboard_jobs_cancelled", "Node runs cancelled")
        # A user's retry (POST .../retry) is a new run of a node; a provider retry is one
        # more call inside the same run after a transient error: two counters, two names.
        self.user_retries = _counter(
            r, "flowboard_jobs_retried_by_user", "Node runs started again by a user's retry"
        )
        self.provider_retries = _counter(
            r, "flowboard_provider_calls_retried", "Provider calls retried after a transient error"
        )
        self.resumed = _counter(r, "flowboard_jobs_resumed", "Node runs resumed after start-up")
        # The reaper re-drives a running task whose job was lost (it does not end it).
        self.redriven = _counter(
            r, "flowboard_jobs_redriven", "Running node runs re-driven by the reaper"
        )
        self.sse_subscribers = Gauge("flowboard_sse_subscribers", "Open event streams", registry=r)

    def transition(self, node_type: str, before: TaskStatus, after: TaskStatus) -> None:
        if before is after:
            return
        counter = {
            TaskStatus.PROCESSING: self.started,
            TaskStatus.COMPLETED: self.completed,
            TaskStatus.FAILED: self.failed,
            TaskStatus.CANCELLED: self.cancelled,
        }.get(after)
        if counter is not None:
            counter.labels(node_type).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
