"""Validate an API-format prompt the way ComfyUI's POST /prompt does, with its error shapes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.comfyui_graph import as_link, class_of, inputs_of, links_of
from tests.fakes.comfyui_nodes import NODE_CLASSES, Dirs, InputSpec, NodeClass

# (class_type, input name, value) → True when the value must pass validation regardless.
Lenient = Callable[[str, str, Any], bool]


@dataclass(frozen=True)
class Validation:
    """Outcome of validating a prompt.

    error: the top-level `error` object; None when at least one output node is valid.
    outputs: ids of the output nodes that passed, in prompt order.
    node_errors: `{node id: {errors, dependent_outputs, class_type}}`, possibly non-empty
        even when some outputs passed (ComfyUI then queues only the valid outputs).
    """

    error: dict[str, Any] | None
    outputs: list[str]
    node_errors: dict[str, Any]


def error(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    """Build one ComfyUI error object."""
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def _fail(kind: str, message: str, details: str = "") -> Validation:
    return Validation(error(kind, message, details), [], {})


def validate_prompt(prompt: Any, dirs: Dirs, lenient: Lenient) -> Validation:
    """Validate a whole prompt: node classes first, then every input reachable from outputs."""
    if not isinstance(prompt, dict):
        return _fail("invalid_prompt", "Cannot execute because the prompt is not an object.")
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return _fail(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            )
        if node["class_type"] not in NODE_CLASSES:
            return _fail(
                "invalid_prompt",
                f"Cannot execute because node {node['class_type']} does not exist.",
                f"Node ID '#{node_id}'",
            )
    outputs = [n for n in prompt if NODE_CLASSES[class_of(prompt, n)].output_node]
    if not outputs:
        return _fail("prompt_no_outputs", "Prompt has no outputs")
    return _validate_outputs(prompt, outputs, dirs, lenient)


def _validate_outputs(
    prompt: Mapping[str, Any], outputs: list[str], dirs: Dirs, lenient: Lenient
) -> Validation:
    found: dict[str, list[dict[str, Any]]] = {}
    good: list[str] = []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        bad = []
        for node_id in _reachable(prompt, output):
            if node_id not in found:
                found[node_id] = _check_node(prompt, node_id, dirs, lenient)
            if found[node_id]:
                bad.append(node_id)
        if not bad:
            good.append(output)
        for node_id in bad:
            entry = node_errors.setdefault(
                node_id,
                {
                    "errors": found[node_id],
                    "dependent_outputs": [],
                    "class_type": class_of(prompt, node_id),
                },
            )
            entry["dependent_outputs"].append(output)
    if good:
        return Validation(None, good, node_errors)
    details = "\n".join(
        f"{entry['class_type']} {node_id}:\n"
        + "\n".join(f"- {e['message']}: {e['details']}" for e in entry["errors"])
        for node_id, entry in node_errors.items()
    )
    top = error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
    return Validation(top, [], node_errors)


def _reachable(prompt: Mapping[str, Any], output: str) -> list[str]:
    seen: list[str] = []
    pending = [output]
    while pending:
        node_id = pending.pop()
        if node_id in seen or node_id not in prompt:
            continue
        seen.append(node_id)
        pending.extend(source for _name, source, _slot in links_of(prompt, node_id))
    return seen


def _check_node(
    prompt: Mapping[str, Any], node_id: str, dirs: Dirs, lenient: Lenient
) -> list[dict[str, Any]]:
    cls = NODE_CLASSES[class_of(prompt, node_id)]
    inputs = inputs_of(prompt, node_id)
    errors: list[dict[str, Any]] = []
    for name, spec in cls.required.items():
        if name not in inputs:
            errors.append(
                error("required_input_missing", "Required input is missing", name, input_name=name)
            )
            continue
        problem = _check_input(prompt, cls, name, spec, inputs[name], lenient)
        errors.extend([problem] if problem else [])
    for name, spec in cls.optional.items():
        problem = (
            _check_input(prompt, cls, name, spec, inputs[name], lenient)
            if (name in inputs)
            else None
        )
        errors.extend([problem] if problem else [])
    reason = cls.check(inputs, dirs) if cls.check is not None and not errors else None
    if reason:
        errors.append(
            error(
                "custom_validation_failed",
                "Custom validation failed for node",
                f"{next(iter(cls.required))} - {reason}",
                input_name=next(iter(cls.required)),
            )
        )
    return errors


def _check_input(
    prompt: Mapping[str, Any],
    cls: NodeClass,
    name: str,
    spec: InputSpec,
    value: Any,
    lenient: Lenient,
) -> dict[str, Any] | None:
    link = as_link(value)
    if link is not None:
        return _check_link(prompt, name, spec, link)
    if lenient(cls.name, name, value):
        return None
    extra = {"input_name": name, "input_config": spec.describe(), "received_value": value}
    if not spec.is_widget:
        return error(
            "invalid_input_type",
            f"Failed to convert an input value to a {spec.kind} value",
            f"{name}, {value!r}, expected a link",
            **extra,
        )
    if spec.kind == "COMBO":
        return _check_combo(name, spec, value, extra)
    if spec.kind not in {"INT", "FLOAT"}:
        return None
    try:
        number: float = int(value) if spec.kind == "INT" else float(value)
    except (TypeError, ValueError) as exc:
        return error(
            "invalid_input_type",
            f"Failed to convert an input value to a {spec.kind} value",
            f"{name}, {value}, {exc}",
            **extra,
        )
    if spec.minimum is not None and number < spec.minimum:
        return error(
            "value_smaller_than_min",
            f"Value {number} smaller than min of {spec.minimum}",
            name,
            **extra,
        )
    if spec.maximum is not None and number > spec.maximum:
        return error(
            "value_bigger_than_max",
            f"Value {number} bigger than max of {spec.maximum}",
            name,
            **extra,
        )
    return None


def _check_combo(
    name: str, spec: InputSpec, value: Any, extra: dict[str, Any]
) -> dict[str, Any] | None:
    if not isinstance(value, str):
        return error(
            "invalid_input_type",
            "Failed to convert an input value to a COMBO value",
            f"{name}, {value!r}",
            **extra,
        )
    if spec.options is not None and value not in spec.options:
        return error(
            "value_not_in_list",
            "Value not in list",
            f"{name}: '{value}' not in {list(spec.options)}",
            **extra,
        )
    return None


def _check_link(
    prompt: Mapping[str, Any], name: str, spec: InputSpec, link: tuple[str, int]
) -> dict[str, Any] | None:
    source, slot = link
    if source not in prompt:
        return error(
            "exception_during_inner_validation",
            "Exception when validating inner node",
            f"'{source}'",
            input_name=name,
            exception_message=f"linked node {source} is not in the prompt",
        )
    outputs = NODE_CLASSES[class_of(prompt, source)].outputs
    received = outputs[slot] if 0 <= slot < len(outputs) else "<none>"
    expected = spec.kind
    if received != expected and not (spec.is_widget and received in {"INT", "FLOAT", "STRING"}):
        return error(
            "return_type_mismatch",
            "Return type mismatch between linked nodes",
            f"{name}, received_type({received}) mismatch input_type({expected})",
            input_name=name,
            received_type=received,
            linked_node=[source, slot],
        )
    return None
