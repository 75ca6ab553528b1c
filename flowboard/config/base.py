"""What every settings section is, and the error a bad setting raises."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)


class ConfigError(Exception):
    """A setting is invalid; the message names it in one line."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
