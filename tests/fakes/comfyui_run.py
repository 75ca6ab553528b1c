"""Run one queued prompt the way ComfyUI's executor does, sending its websocket events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tests.fakes.comfyui_graph import as_link, class_of, execution_order, inputs_of, signatures
from tests.fakes.comfyui_nodes import NODE_CLASSES, Dirs, NodeClass, NodeContext, NodeResult
from tests.fakes.comfyui_records import HistoryEntry, QueueItem, now_ms

# (event, data, sid) → deliver to that socket; the executor never broadcasts.
Send = Callable[[str, dict[str, Any], str | None], Awaitable[None]]


@dataclass(frozen=True)
class NodeFailure:
    """A runtime error a node raises on purpose: the exception type name and message."""

    message: str
    exception_type: str = "RuntimeError"


class Knobs(Protocol):
    """The misbehaviour settings a run reads (FakeComfyUI provides them)."""

    step_delay: float
    node_delay: float
    step_progress_state: bool

    def runtime_failure(self, class_type: str, inputs: Mapping[str, Any]) -> NodeFailure | None:
        """Return the failure a node of `class_type` with these literal inputs must raise."""
        ...


class OutputCache:
    """Node results by input signature; like ComfyUI's classic cache, it keeps one prompt's."""

    def __init__(self) -> None:
        self._results: dict[str, NodeResult] = {}

    def __contains__(self, signature: object) -> bool:
        return signature in self._results

    def get(self, signature: str) -> NodeResult:
        """Return a cached result."""
        return self._results[signature]

    def put(self, signature: str, result: NodeResult) -> None:
        """Cache a node's result."""
        self._results[signature] = result

    def keep_only(self, signatures: set[str]) -> None:
        """Forget results the new prompt does not use."""
        self._results = {k: v for k, v in self._results.items() if k in signatures}

    def clear(self) -> None:
        """Forget everything (a restart)."""
        self._results.clear()


class _Interrupted(Exception):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


class _Failed(Exception):
    def __init__(self, node_id: str, failure: NodeFailure, inputs: Mapping[str, Any]) -> None:
        super().__init__(failure.message)
        self.node_id, self.failure, self.inputs = node_id, failure, inputs


def _shown(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | bool | str) else str(value)


class PromptRun:
    """Execute one prompt: events go to the prompt's client_id only; returns its history."""

    def __init__(
        self,
        item: QueueItem,
        *,
        knobs: Knobs,
        cache: OutputCache,
        dirs: Dirs,
        send: Send,
        interrupted: Callable[[], bool],
    ) -> None:
        self.item = item
        self.current_node: str | None = None
        self._knobs, self._cache, self._dirs = knobs, cache, dirs
        self._send_to, self._interrupted = send, interrupted
        self._values: dict[str, tuple[Any, ...]] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._executed: list[str] = []
        self._messages: list[list[Any]] = []
        self._outputs: dict[str, Any] = {}

    async def run(self) -> HistoryEntry:
        """Run every staged node in order; stop between nodes on interrupt or at a failure."""
        prompt = self.item.prompt
        await self._event("execution_start", {})
        keys = signatures(prompt, self._dirs)
        self._cache.keep_only(set(keys.values()))
        cached = [node_id for node_id in prompt if keys[node_id] in self._cache]
        await self._event("execution_cached", {"nodes": cached})
        for node_id in cached:
            self._values[node_id] = self._cache.get(keys[node_id]).outputs
        self._executed.extend(cached)
        try:
            for node_id in execution_order(prompt, self.item.outputs, set(cached)):
                if self._interrupted():
                    raise _Interrupted(node_id)
                await self._node(node_id, keys[node_id], node_id in cached)
        except _Interrupted as stop:
            await self._event(
                "execution_interrupted",
                {
                    "node_id": stop.node_id,
                    "node_type": class_of(prompt, stop.node_id),
                    "executed": list(self._executed),
                },
            )
            return HistoryEntry(self.item, "error", self._messages, {})
        except _Failed as failed:
            await self._event("execution_error", self._error_data(failed))
            return HistoryEntry(self.item, "error", self._messages, {})
        await self._event("execution_success", {})
        return HistoryEntry(self.item, "success", self._messages, self._outputs)

    async def _node(self, node_id: str, key: str, cached: bool) -> None:
        cls = NODE_CLASSES[class_of(self.item.prompt, node_id)]
        if cached:
            await self._publish(node_id, self._cache.get(key).ui)
            await self._progress_state(node_id, "finished", 1, 1)
            return
        await self._progress_state(node_id, "running", 0, 1)
        self.current_node = node_id
        await self._send(
            "executing",
            {"node": node_id, "display_node": node_id, "prompt_id": self.item.prompt_id},
        )
        inputs = self._resolve(node_id)
        failure = self._knobs.runtime_failure(cls.name, inputs_of(self.item.prompt, node_id))
        if failure is not None:
            raise _Failed(node_id, failure, inputs)
        if self._knobs.node_delay > 0:
            await asyncio.sleep(self._knobs.node_delay)
        steps = await self._steps(node_id, cls, inputs)
        try:
            result = await cls.run(inputs, NodeContext(node_id, self._dirs))
        except Exception as exc:  # any node error becomes execution_error, as in ComfyUI
            raise _Failed(node_id, NodeFailure(str(exc), type(exc).__name__), inputs) from exc
        self._values[node_id] = result.outputs
        self._cache.put(key, result)
        self._executed.append(node_id)
        await self._publish(node_id, result.ui)
        await self._progress_state(node_id, "finished", steps, steps)

    def _resolve(self, node_id: str) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for name, value in inputs_of(self.item.prompt, node_id).items():
            link = as_link(value)
            resolved[name] = self._values[link[0]][link[1]] if link else value
        return resolved

    async def _steps(self, node_id: str, cls: NodeClass, inputs: Mapping[str, Any]) -> int:
        """Report sampler steps as `progress` events; return the progress maximum."""
        if cls.steps_input is None:
            return 1
        steps = int(inputs[cls.steps_input])
        for value in range(1, steps + 1):
            await asyncio.sleep(self._knobs.step_delay)
            if self._knobs.step_progress_state:
                await self._progress_state(node_id, "running", value, steps)
            await self._send(
                "progress",
                {"value": value, "max": steps, "prompt_id": self.item.prompt_id, "node": node_id},
            )
        return steps

    async def _publish(self, node_id: str, ui: dict[str, Any] | None) -> None:
        if not ui:
            return
        self._outputs[node_id] = ui
        await self._send(
            "executed",
            {
                "node": node_id,
                "display_node": node_id,
                "output": ui,
                "prompt_id": self.item.prompt_id,
            },
        )

    async def _progress_state(self, node_id: str, state: str, value: int, top: int) -> None:
        self._progress[node_id] = {
            "value": value,
            "max": top,
            "state": state,
            "node_id": node_id,
            "prompt_id": self.item.prompt_id,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        nodes = {key: dict(entry) for key, entry in self._progress.items()}
        await self._send("progress_state", {"prompt_id": self.item.prompt_id, "nodes": nodes})

    def _error_data(self, failed: _Failed) -> dict[str, Any]:
        node_type = class_of(self.item.prompt, failed.node_id)
        kind, message = failed.failure.exception_type, failed.failure.message
        return {
            "node_id": failed.node_id,
            "node_type": node_type,
            "executed": list(self._executed),
            "exception_message": message,
            "exception_type": kind,
            "traceback": [
                "Traceback (most recent call last):\n",
                f'  File "fake_comfyui/nodes.py", line 1, in {node_type}\n',
                f"{kind}: {message}\n",
            ],
            "current_inputs": {k: [_shown(v)] for k, v in failed.inputs.items()},
            "current_outputs": list(self._values),
        }

    async def _event(self, event: str, data: dict[str, Any]) -> None:
        """Send an execution_* event and keep it for the history's status messages."""
        payload = {"prompt_id": self.item.prompt_id, **data, "timestamp": now_ms()}
        self._messages.append([event, payload])
        await self._send(event, payload)

    async def _send(self, event: str, data: dict[str, Any]) -> None:
        if self.item.client_id is not None:
            await self._send_to(event, data, self.item.client_id)
