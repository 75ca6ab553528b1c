"""Progress of a whole ComfyUI workflow from its websocket events, and a throttled reporter."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowboard.providers.base import Progress, ProgressCallback

# A sampler step costs about as much as a whole light node (loader, encoder, save),
# so samplers weigh their step count and every other node one unit.
STEP_WEIGHT = 1.0
NODE_WEIGHT = 1.0
CAP = 99.0  # 100 is reported by the caller once the video is stored


def _links(node: Mapping[str, Any]) -> Iterable[str]:
    for value in node.get("inputs", {}).values():
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
            yield str(value[0])


def upstream(graph: Mapping[str, Any], output_node: str) -> set[str]:
    """Return the output node and every node it depends on: the nodes that will execute."""
    seen: set[str] = set()
    pending = [output_node]
    while pending:  # bounded: each node is visited once
        node_id = pending.pop()
        if node_id in seen or node_id not in graph:
            continue
        seen.add(node_id)
        pending.extend(_links(graph[node_id]))
    return seen


def node_weight(node: Mapping[str, Any]) -> float:
    """Weigh a node: samplers by their literal `steps`, everything else NODE_WEIGHT."""
    steps = node.get("inputs", {}).get("steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
        return NODE_WEIGHT + STEP_WEIGHT * steps
    return NODE_WEIGHT


def _fraction(value: Any, top: Any) -> float | None:
    if not isinstance(value, int | float) or not isinstance(top, int | float) or top <= 0:
        return None
    return min(1.0, max(0.0, float(value) / float(top)))


@dataclass
class WorkflowProgress:
    """Percent done of one prompt, from the events of the nodes that will execute.

    weights: node id → weight; nodes outside it (other outputs, unknown ids) are ignored.
    """

    weights: dict[str, float]
    _done: set[str] = field(default_factory=set)
    _partial: dict[str, float] = field(default_factory=dict)
    _current: str | None = None
    _best: float = 0.0

    @classmethod
    def for_graph(cls, graph: Mapping[str, Any], output_node: str) -> WorkflowProgress:
        """Weigh the nodes upstream of the output node."""
        return cls({n: node_weight(graph[n]) for n in upstream(graph, output_node)})

    @property
    def percent(self) -> float:
        """Return the best percent so far: never decreasing, at most CAP."""
        return self._best

    def apply(self, kind: str, data: Mapping[str, Any]) -> float:
        """Take one websocket event into account; return the new percent."""
        if kind == "execution_cached":
            self._finish(str(n) for n in data.get("nodes") or [])
        elif kind == "executing":
            self._executing(data.get("node"))
        elif kind == "progress":
            self._step(data.get("node"), _fraction(data.get("value"), data.get("max")))
        elif kind == "progress_state":
            self._states(data.get("nodes"))
        elif kind == "executed":
            self._finish([str(data.get("node"))])
        self._best = max(self._best, self._compute())
        return self._best

    def _executing(self, node: Any) -> None:
        # Nodes run one at a time: a new node starting means the previous one ended.
        if self._current is not None and node != self._current:
            self._finish([self._current])
        self._current = str(node) if node is not None else None

    def _step(self, node: Any, fraction: float | None) -> None:
        if node is not None and fraction is not None and str(node) not in self._done:
            self._partial[str(node)] = max(fraction, self._partial.get(str(node), 0.0))

    def _states(self, nodes: Any) -> None:
        if not isinstance(nodes, Mapping):
            return
        for node_id, state in nodes.items():
            if not isinstance(state, Mapping):
                continue
            if state.get("state") == "finished":
                self._finish([str(node_id)])
            else:
                self._step(node_id, _fraction(state.get("value"), state.get("max")))

    def _finish(self, nodes: Iterable[str]) -> None:
        for node_id in nodes:
            self._done.add(node_id)
            self._partial.pop(node_id, None)

    def _compute(self) -> float:
        total = sum(self.weights.values())
        if total <= 0:
            return 0.0
        done = sum(w for n, w in self.weights.items() if n in self._done)
        partial = sum(self.weights[n] * f for n, f in self._partial.items() if n in self.weights)
        return min(CAP, 100.0 * (done + partial) / total)


@dataclass
class ThrottledReporter:
    """Send strictly increasing percents, at most one per `interval` seconds; flush at the end."""

    report: ProgressCallback
    interval: float
    _sent: float = 0.0
    _sent_at: float = float("-inf")
    _pending: float | None = None

    async def offer(self, percent: float) -> None:
        """Report now if due, else keep the value for the next report or flush()."""
        if percent <= self._sent:
            return
        if time.monotonic() - self._sent_at < self.interval:
            self._pending = percent
            return
        await self._send(percent)

    async def flush(self) -> None:
        """Send the value held back by the throttle, if any."""
        if self._pending is not None and self._pending > self._sent:
            await self._send(self._pending)

    async def _send(self, percent: float) -> None:
        self._sent, self._sent_at, self._pending = percent, time.monotonic(), None
        await self.report(Progress(percent, message="generating"))
