"""Prometheus counters of this process (a registry per app, no global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from flowboard.execution.model import TaskStatus


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
        self.retried = _counter(r, "flowboard_jobs_retried", "Provider calls retried")
        self.resumed = _counter(r, "flowboard_jobs_resumed", "Node runs resumed after start-up")
        self.reaped = _counter(r, "flowboard_jobs_reaped", "Node runs ended by the reaper")
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
