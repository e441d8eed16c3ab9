"""The value types every section of the gateway's config shares (ports, seconds, finite
numbers) and the base of its models: frozen, and an unknown key is an error."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mcptool.numbers import config_number

__all__ = ["FiniteFloat", "Port", "Seconds", "SettingsModel"]

Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[float, config_number(gt=0, le=86400)]
FiniteFloat = Annotated[float, config_number()]


class SettingsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
