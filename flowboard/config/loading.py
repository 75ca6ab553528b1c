"""Read the settings: `config.toml` (or `--config`), then `FLOWBOARD_<SECTION>__<KEY>` variables."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from flowboard.config.base import ConfigError
from flowboard.config.settings import Settings

ENV_PREFIX = "FLOWBOARD_"
ENV_SEPARATOR = "__"


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "FLOWBOARD_CONFIG":
            continue
        path = name[len(ENV_PREFIX) :].lower().split(ENV_SEPARATOR)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"config error: {name}: {part} is not a section")
            node = child
        node[path[-1]] = value


def _merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


_SECRET_WORDS = ("secret", "key", "token", "password")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    value = first.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float | bool) else ""
    if first["type"] == "extra_forbidden" or any(w in where.lower() for w in _SECRET_WORDS):
        shown = ""  # a secret setting, or a mistyped name of one, must not print its value
    return f"config error: {where}: {first['msg']}{shown}"


# Settings that name files: relative values in a config file mean "beside that file"
# ("*" stands for any table name).
FILE_SETTINGS = (
    ("data_dir",),
    ("providers", "veo", "credentials_file"),
    ("providers", "comfyui", "workflows", "*", "file"),
)


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: --config, else FLOWBOARD_CONFIG, else ./config.toml if any."""
    if explicit is not None:
        return explicit
    if environ.get("FLOWBOARD_CONFIG"):
        return Path(environ["FLOWBOARD_CONFIG"])
    default = Path("config.toml")
    return default if default.is_file() else None


def _resolve_files(node: Any, keys: tuple[str, ...], base: Path) -> None:
    """Make the relative file settings under `node` absolute against `base`."""
    if not isinstance(node, dict) or not keys:
        return
    first, rest = keys[0], keys[1:]
    children = list(node) if first == "*" else [first]
    for name in children:
        value = node.get(name)
        if rest:
            _resolve_files(value, rest, base)
        elif isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            node[name] = str((base / value).resolve())


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config error: file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config error: {path}: {exc}") from exc
    base = path.resolve().parent
    for keys in FILE_SETTINGS:
        _resolve_files(raw, keys, base)
    return raw


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read the TOML file (if any), apply env overrides, then explicit overrides.

    Relative file settings of the TOML file resolve against the file's folder; those
    of the environment and the overrides against the working directory.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get("FLOWBOARD_CONFIG"):
        path = Path(env["FLOWBOARD_CONFIG"])
    raw: dict[str, Any] = {} if path is None else _read_file(path)
    _apply_env(raw, env)
    _merge(raw, overrides or {})
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
