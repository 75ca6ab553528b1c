"""The node types the canvas accepts: found in this package, plus those of plugins.

Every module of `flowboard.nodes` that defines `NODE_TYPE` is one node type: a new
type is one new module, listed nowhere else. Plugin modules (`plugins` in the
settings) add theirs through `load_plugins()` at start-up; node types are code, so,
like imported modules, they are kept per process, not per app.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from flowboard.nodes.base import NodeType

_PACKAGE = "flowboard.nodes"


class NodeTypeConflict(Exception):
    """Two modules declare different node types under one name."""


def _builtin() -> dict[str, NodeType]:
    package = importlib.import_module(_PACKAGE)
    found: dict[str, NodeType] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name in ("base", "registry"):
            continue
        node_type = getattr(importlib.import_module(f"{_PACKAGE}.{info.name}"), "NODE_TYPE", None)
        if isinstance(node_type, NodeType):
            found[node_type.name] = node_type
    return found


_TYPES: dict[str, NodeType] = _builtin()
NODE_TYPES: Mapping[str, NodeType] = MappingProxyType(_TYPES)


def add_node_type(node_type: NodeType) -> None:
    """Accept a node type declared outside this package (a plugin's); idempotent."""
    known = _TYPES.get(node_type.name)
    if known is not None and known != node_type:
        raise NodeTypeConflict(f"node type {node_type.name!r} is declared twice")
    _TYPES[node_type.name] = node_type


def load_plugins(modules: Iterable[str]) -> None:
    """Import plugin modules and add the node types they declare (`NODE_TYPE(S)`)."""
    for name in modules:
        module = importlib.import_module(name)
        declared = [getattr(module, "NODE_TYPE", None), *getattr(module, "NODE_TYPES", ())]
        for node_type in declared:
            if isinstance(node_type, NodeType):
                add_node_type(node_type)


def generation_types() -> dict[str, NodeType]:
    """The node types the generic generation processor runs."""
    return {name: t for name, t in _TYPES.items() if t.generation is not None}
