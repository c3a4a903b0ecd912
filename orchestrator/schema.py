"""The base of every config model: unknown keys are errors and a validated config never changes."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
