"""Graph helpers for API-format prompts: links, cache signatures and execution order."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from tests.fakes.comfyui_nodes import NODE_CLASSES, Dirs

Prompt = Mapping[str, Any]


def as_link(value: Any) -> tuple[str, int] | None:
    """Return (node id, output slot) when `value` is a link like ["4", 0]."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str | int)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    ):
        return str(value[0]), value[1]
    return None


def inputs_of(prompt: Prompt, node_id: str) -> Mapping[str, Any]:
    """Return a node's `inputs` mapping (empty when absent or malformed)."""
    node = prompt.get(node_id)
    inputs = node.get("inputs") if isinstance(node, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def links_of(prompt: Prompt, node_id: str) -> Iterator[tuple[str, str, int]]:
    """Yield (input name, source node id, slot) for each linked input, in input order."""
    for name, value in inputs_of(prompt, node_id).items():
        link = as_link(value)
        if link is not None:
            yield name, link[0], link[1]


def class_of(prompt: Prompt, node_id: str) -> str:
    """Return a node's class_type."""
    return str(prompt[node_id]["class_type"])


def signatures(prompt: Prompt, dirs: Dirs) -> dict[str, str]:
    """Return a cache key per node: its class, literal inputs and upstream keys, like ComfyUI's."""
    done: dict[str, str] = {}

    def visit(node_id: str, trail: frozenset[str]) -> str:
        if node_id in done:
            return done[node_id]
        if node_id in trail or node_id not in prompt:
            return f"<missing {node_id}>"
        parts: dict[str, Any] = {"class": class_of(prompt, node_id)}
        for name, value in sorted(inputs_of(prompt, node_id).items()):
            link = as_link(value)
            parts[name] = [visit(link[0], trail | {node_id}), link[1]] if link else value
        cls = NODE_CLASSES.get(parts["class"])
        if cls is not None and cls.change_key is not None:
            parts["changed"] = cls.change_key(inputs_of(prompt, node_id), dirs)
        done[node_id] = json.dumps(parts, sort_keys=True, default=str)
        return done[node_id]

    for node_id in prompt:
        visit(node_id, frozenset())
    return done


def execution_order(prompt: Prompt, outputs: list[str], cached: set[str]) -> list[str]:
    """Order the nodes to run like ComfyUI's execution list: dependencies first, outputs early.

    Nodes are staged depth-first from the output nodes; cached nodes are not staged (their
    values come from the cache) except cached output nodes, which replay their UI output.
    Among ready nodes the pick prefers an output node, then a node feeding an output node,
    then the first staged.
    """
    staged: dict[str, set[str]] = {}

    def stage(node_id: str) -> None:
        if node_id in staged:
            return
        staged[node_id] = set()
        if node_id in cached:
            return
        for _name, source, _slot in links_of(prompt, node_id):
            if source in cached:
                continue
            staged[node_id].add(source)
            stage(source)

    for output in outputs:
        stage(output)
    feeds_output = {src for out in outputs for _n, src, _s in links_of(prompt, out)}
    order: list[str] = []
    while staged:
        ready = [n for n, deps in staged.items() if not deps]
        if not ready:
            raise ValueError("dependency cycle")
        pick = next((n for n in ready if n in outputs), None)
        pick = pick or next((n for n in ready if n in feeds_output), ready[0])
        order.append(pick)
        del staged[pick]
        for deps in staged.values():
            deps.discard(pick)
    return order
